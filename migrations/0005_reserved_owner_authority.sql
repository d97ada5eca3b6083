-- Reserved for the owner's authority over every share and /panic's OpenShock pauses (being written in parallel); replaced when it lands.
SELECT 1;
