-- Reserved for approval mode and expiring grants (being written in parallel); replaced when it lands.
SELECT 1;
