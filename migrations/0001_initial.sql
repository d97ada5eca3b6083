-- The first schema: accounts, shares, permissions, feeds, the audit trail and stored hub events.
-- Discord ids are INTEGER; OpenShock ids (uuids) are TEXT; times are unix seconds (REAL).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- One linked OpenShock account per Discord user.
CREATE TABLE accounts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: ids key live connections
    discord_user_id   INTEGER NOT NULL UNIQUE,
    openshock_user_id TEXT    NOT NULL UNIQUE,
    openshock_name    TEXT    NOT NULL,
    api_url           TEXT    NOT NULL,
    token_encrypted   BLOB    NOT NULL,
    is_operator       INTEGER NOT NULL DEFAULT 0 CHECK (is_operator IN (0, 1)),
    state             TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'invalid')),
    state_reason      TEXT,
    linked_at         REAL    NOT NULL,
    updated_at        REAL    NOT NULL
) STRICT;

-- A wearer's shocker made usable in one guild, with the wearer's caps for that guild.
CREATE TABLE shares (
    id                INTEGER PRIMARY KEY,
    guild_id          INTEGER NOT NULL,
    account_id        INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    wearer_id         INTEGER NOT NULL,
    shocker_id        TEXT    NOT NULL,
    shocker_name      TEXT    NOT NULL,
    max_intensity     INTEGER NOT NULL CHECK (max_intensity BETWEEN 1 AND 100),
    max_duration_ms   INTEGER NOT NULL CHECK (max_duration_ms BETWEEN 300 AND 65535),
    allow_shock       INTEGER NOT NULL DEFAULT 1 CHECK (allow_shock IN (0, 1)),
    allow_vibrate     INTEGER NOT NULL DEFAULT 1 CHECK (allow_vibrate IN (0, 1)),
    allow_sound       INTEGER NOT NULL DEFAULT 1 CHECK (allow_sound IN (0, 1)),
    paused            INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    created_at        REAL    NOT NULL,
    UNIQUE (guild_id, shocker_id)
) STRICT;
CREATE INDEX shares_by_account ON shares (account_id);
CREATE INDEX shares_by_shocker ON shares (shocker_id);

-- A wearer's "pause everything of mine in this guild".
CREATE TABLE wearer_pauses (
    guild_id  INTEGER NOT NULL,
    wearer_id INTEGER NOT NULL,
    paused_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, wearer_id)
) STRICT;

-- A wearer's "this member may not control me in this guild".
CREATE TABLE blocks (
    guild_id   INTEGER NOT NULL,
    wearer_id  INTEGER NOT NULL,
    member_id  INTEGER NOT NULL,
    created_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, wearer_id, member_id)
) STRICT;

-- An admin's permission for a role or member, on one shocker or (shocker_id NULL) all of them.
CREATE TABLE grants (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    target_kind     TEXT    NOT NULL CHECK (target_kind IN ('role', 'member')),
    target_id       INTEGER NOT NULL,
    shocker_id      TEXT,
    max_intensity   INTEGER CHECK (max_intensity BETWEEN 1 AND 100),
    max_duration_ms INTEGER CHECK (max_duration_ms BETWEEN 300 AND 65535),
    cooldown_ms     INTEGER CHECK (cooldown_ms >= 0),
    allow_shock     INTEGER NOT NULL DEFAULT 1 CHECK (allow_shock IN (0, 1)),
    allow_vibrate   INTEGER NOT NULL DEFAULT 1 CHECK (allow_vibrate IN (0, 1)),
    allow_sound     INTEGER NOT NULL DEFAULT 1 CHECK (allow_sound IN (0, 1)),
    created_by      INTEGER NOT NULL,
    created_at      REAL    NOT NULL
) STRICT;
CREATE UNIQUE INDEX grants_unique_target
    ON grants (guild_id, target_kind, target_id, coalesce(shocker_id, ''));

-- Server-wide caps set by the admins.
CREATE TABLE guild_settings (
    guild_id        INTEGER PRIMARY KEY,
    max_intensity   INTEGER CHECK (max_intensity BETWEEN 1 AND 100),
    max_duration_ms INTEGER CHECK (max_duration_ms BETWEEN 300 AND 65535)
) STRICT;

-- Feed channels, one per kind and guild. A feed that lost its channel is disabled, not deleted.
CREATE TABLE feeds (
    guild_id        INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('controls', 'devices', 'updates')),
    channel_id      INTEGER NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    disabled_reason TEXT,
    created_at      REAL    NOT NULL,
    PRIMARY KEY (guild_id, kind)
) STRICT;

-- Last control per (guild, member, shocker), so cooldowns survive restarts.
CREATE TABLE cooldowns (
    guild_id   INTEGER NOT NULL,
    member_id  INTEGER NOT NULL,
    shocker_id TEXT    NOT NULL,
    last_at    REAL    NOT NULL,
    PRIMARY KEY (guild_id, member_id, shocker_id)
) STRICT;

-- Every control attempt: sent, confirmed, not confirmed, refused (with reason) or failed.
CREATE TABLE audit (
    id                    INTEGER PRIMARY KEY,
    created_at            REAL    NOT NULL,
    guild_id              INTEGER,
    member_id             INTEGER NOT NULL,
    wearer_id             INTEGER,
    account_id            INTEGER,
    shocker_id            TEXT,
    shocker_name          TEXT,
    control_type          INTEGER NOT NULL,
    requested_intensity   INTEGER,
    requested_duration_ms INTEGER,
    effective_intensity   INTEGER,
    effective_duration_ms INTEGER,
    outcome               TEXT    NOT NULL
        CHECK (outcome IN ('sent', 'confirmed', 'not_confirmed', 'refused', 'failed')),
    reason                TEXT
) STRICT;
CREATE INDEX audit_by_guild ON audit (guild_id, id);

-- Hub events stored on receipt, before anything is posted (so nothing is lost).
CREATE TABLE hub_events (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    received_at REAL    NOT NULL
) STRICT;

-- One row per (event, feed channel) that must be posted; posted rows keep the message id.
CREATE TABLE feed_deliveries (
    id         INTEGER PRIMARY KEY,
    event_id   INTEGER NOT NULL REFERENCES hub_events (id) ON DELETE CASCADE,
    guild_id   INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    channel_id INTEGER NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'dropped')),
    nonce      TEXT,
    message_id INTEGER,
    created_at REAL    NOT NULL,
    posted_at  REAL
) STRICT;
CREATE INDEX feed_deliveries_pending ON feed_deliveries (state, channel_id, id);

-- Last known state of each device, so the devices feed posts real changes only, across restarts.
CREATE TABLE device_states (
    account_id       INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id        TEXT    NOT NULL,
    device_name      TEXT,
    online           INTEGER NOT NULL CHECK (online IN (0, 1)),
    firmware_version TEXT,
    updated_at       REAL    NOT NULL,
    PRIMARY KEY (account_id, device_id)
) STRICT;
