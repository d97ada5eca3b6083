-- Random mode: a wearer's "surprise me for N minutes" on one of their shockers shared in a guild.
-- The row is the durable timer: the end time and the next planned firing, so a restart resumes
-- it until its end. At most one running random mode per shocker (ended_at NULL), in any guild.
CREATE TABLE random_modes (
    id                    INTEGER PRIMARY KEY,
    guild_id              INTEGER NOT NULL,
    wearer_id             INTEGER NOT NULL,
    wearer_name           TEXT    NOT NULL, -- the display name OpenShock's log shows as sender
    shocker_id            TEXT    NOT NULL,
    shocker_name          TEXT    NOT NULL,
    mode                  TEXT    NOT NULL CHECK (mode IN ('shock', 'vibrate', 'both')),
    min_intensity         INTEGER NOT NULL CHECK (min_intensity BETWEEN 1 AND 100),
    max_intensity         INTEGER NOT NULL CHECK (max_intensity BETWEEN min_intensity AND 100),
    max_duration_ms       INTEGER NOT NULL CHECK (max_duration_ms BETWEEN 300 AND 65535),
    min_gap_s             REAL    NOT NULL CHECK (min_gap_s > 0),
    max_gap_s             REAL    NOT NULL CHECK (max_gap_s >= min_gap_s),
    started_at            REAL    NOT NULL,
    ends_at               REAL    NOT NULL,
    -- The next planned firing (drawn in advance, checked again against the ranges when due).
    next_at               REAL    NOT NULL,
    next_gap_s            REAL    NOT NULL,
    next_type             INTEGER NOT NULL CHECK (next_type IN (1, 2)),
    next_intensity        INTEGER NOT NULL,
    next_duration_ms      INTEGER NOT NULL,
    -- The public status message (NULL until it is posted).
    channel_id            INTEGER,
    message_id            INTEGER,
    -- The last firing and what became of it.
    fired                 INTEGER NOT NULL DEFAULT 0,
    last_at               REAL,
    last_type             INTEGER,
    last_intensity        INTEGER,
    last_duration_ms      INTEGER,
    last_outcome          TEXT CHECK (last_outcome IN
                              ('delivered', 'sent', 'unconfirmed', 'offline', 'not_sent')),
    last_note             TEXT,
    ended_at              REAL,
    end_reason            TEXT
) STRICT;
CREATE UNIQUE INDEX random_modes_one_per_shocker ON random_modes (shocker_id)
    WHERE ended_at IS NULL;
CREATE INDEX random_modes_running ON random_modes (ended_at) WHERE ended_at IS NULL;
