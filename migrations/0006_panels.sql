-- Control panels (/panel): one public message with buttons for one share. The buttons' custom
-- ids carry only the panel id (`panel:<id>:<action>`); everything else is read from here and
-- from the share at each press, so a panel keeps working across restarts.
CREATE TABLE panels (
    id               INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: ids live in old messages
    guild_id         INTEGER NOT NULL,
    channel_id       INTEGER NOT NULL,
    message_id       INTEGER UNIQUE,                    -- NULL until the message is posted
    -- The share it was posted for (no FK: the panel outlives it, closed). SQLite may reuse a
    -- deleted share's id; with the share's creation time it names one share.
    share_id         INTEGER NOT NULL,
    share_created_at REAL    NOT NULL,
    shocker_id       TEXT    NOT NULL,
    shocker_name     TEXT    NOT NULL,                  -- shown once the share is gone
    wearer_id        INTEGER NOT NULL,
    reactions        INTEGER NOT NULL DEFAULT 0 CHECK (reactions IN (0, 1)),
    created_by       INTEGER NOT NULL,
    created_at       REAL    NOT NULL,
    closed_at        REAL,                              -- buttons disabled: the share ended
    closed_reason    TEXT,
    -- The last control sent from the panel, as the panel shows it.
    last_member_id   INTEGER,
    last_summary     TEXT,
    last_outcome     TEXT,
    last_at          REAL
) STRICT;
CREATE INDEX panels_by_shocker ON panels (guild_id, shocker_id);
CREATE INDEX panels_by_wearer ON panels (wearer_id);
