-- Reserved for the /stats indexes (being written in parallel); replaced when they land.
SELECT 1;
