-- Reserved for control panels (being written in parallel); replaced when it lands.
SELECT 1;
