-- Votes (/vote): a proposed control the channel votes on until ends_at. A row lives while its
-- vote runs; settling the vote deletes it (and its ballots) before anything is sent, so a vote is
-- never settled twice, not even across a crash. The starter's roles are kept as they were when
-- the vote started (a JSON list of ids): the control is decided as the starter at the end.
CREATE TABLE votes (
    id                INTEGER PRIMARY KEY,
    guild_id          INTEGER NOT NULL,
    channel_id        INTEGER NOT NULL,
    message_id        INTEGER,          -- set once the vote is posted
    shocker_id        TEXT    NOT NULL,
    shocker_name      TEXT    NOT NULL,
    wearer_id         INTEGER NOT NULL,
    starter_id        INTEGER NOT NULL,
    starter_name      TEXT    NOT NULL,
    starter_role_ids  TEXT    NOT NULL DEFAULT '[]',
    control_type      INTEGER NOT NULL CHECK (control_type IN (1, 2, 3)),
    intensity         INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    shown_intensity   INTEGER NOT NULL, -- the values as capped for the starter at the start
    shown_duration_ms INTEGER NOT NULL,
    created_at        REAL    NOT NULL,
    ends_at           REAL    NOT NULL
) STRICT;

-- One ballot per member and vote; changing a vote replaces it.
CREATE TABLE vote_ballots (
    vote_id   INTEGER NOT NULL REFERENCES votes (id) ON DELETE CASCADE,
    member_id INTEGER NOT NULL,
    yes       INTEGER NOT NULL CHECK (yes IN (0, 1)),
    cast_at   REAL    NOT NULL,
    PRIMARY KEY (vote_id, member_id)
) STRICT, WITHOUT ROWID;
