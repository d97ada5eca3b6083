-- Approval mode: a share whose wearer approves each control by someone else, and the requests
-- waiting for their answer (kept across restarts until they expire).
ALTER TABLE shares ADD COLUMN approval INTEGER NOT NULL DEFAULT 0 CHECK (approval IN (0, 1));

CREATE TABLE approval_requests (
    id                   INTEGER PRIMARY KEY,
    guild_id             INTEGER NOT NULL,
    channel_id           INTEGER NOT NULL, -- where the control came from; the request is posted there
    message_id           INTEGER,          -- the request message, once posted
    shocker_id           TEXT    NOT NULL,
    wearer_id            INTEGER NOT NULL,
    requester_id         INTEGER NOT NULL,
    requester_roles      TEXT    NOT NULL, -- JSON list of role ids, as the control came in
    requester_name       TEXT    NOT NULL, -- display name, for OpenShock's customName
    control_type         INTEGER NOT NULL,
    intensity            INTEGER NOT NULL,
    duration_ms          INTEGER NOT NULL,
    origin               TEXT    NOT NULL,
    summary              TEXT    NOT NULL, -- what was asked, as the request message shows it
    state                TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'ended')),
    reply_application_id INTEGER,          -- the requester's interaction, to edit its reply
    reply_token          TEXT,
    created_at           REAL    NOT NULL,
    expires_at           REAL    NOT NULL
) STRICT;
CREATE INDEX approval_requests_by_state ON approval_requests (state, expires_at);
CREATE INDEX approval_requests_by_requester
    ON approval_requests (guild_id, shocker_id, requester_id, state);

-- Expiring grants: a grant stops counting at expires_at (NULL: never); the decision checks it.
ALTER TABLE grants ADD COLUMN expires_at REAL;
CREATE INDEX grants_by_expiry ON grants (expires_at) WHERE expires_at IS NOT NULL;
