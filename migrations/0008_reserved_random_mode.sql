-- Reserved for random mode (being written in parallel); replaced when it lands.
SELECT 1;
