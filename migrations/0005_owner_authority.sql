-- The owner rules their shocker: the linked account that owns a shocker on OpenShock may pause
-- (and unshare) every guild share of it, also shares made by another account that reaches it
-- through an OpenShock share; /panic pauses them everywhere and pauses the owner's shockers on
-- OpenShock itself.

-- The OpenShock account that owns the shared shocker, as the sharing account's server said when
-- it was shared (NULL for shares made before this was recorded: the owner's live list decides).
ALTER TABLE shares ADD COLUMN owner_openshock_id TEXT;

-- An owner's pause of their shocker, whoever shared it: in one guild, or in every guild
-- (guild_id NULL, set by /panic). It matches a share of the same shocker id on the same server
-- (api_url), outlives an unshare and a share again, and only the owner lifts it.
CREATE TABLE owner_pauses (
    guild_id           INTEGER,
    api_url            TEXT NOT NULL,
    shocker_id         TEXT NOT NULL,
    owner_openshock_id TEXT NOT NULL,
    paused_at          REAL NOT NULL
) STRICT;
CREATE UNIQUE INDEX owner_pauses_unique ON owner_pauses (coalesce(guild_id, 0), api_url, shocker_id);
CREATE INDEX owner_pauses_by_shocker ON owner_pauses (shocker_id);

-- The pauses /panic set on OpenShock itself (shockers that were not paused there before), so
-- that /shockers resume lifts those and never a pause the wearer set on the website.
CREATE TABLE panic_openshock_pauses (
    api_url            TEXT NOT NULL,
    shocker_id         TEXT NOT NULL,
    owner_openshock_id TEXT NOT NULL,
    shocker_name       TEXT NOT NULL,
    paused_at          REAL NOT NULL,
    PRIMARY KEY (api_url, shocker_id)
) STRICT;
