-- Indexes for /stats: each aggregate reads one index in its GROUP BY order, so SQLite counts a
-- million audit rows without sorting them. The day is the UTC calendar day, days since 1970
-- (queries must spell the expression exactly like this to use the index).
CREATE INDEX audit_by_day
    ON audit (guild_id, CAST(created_at / 86400 AS INTEGER), control_type, outcome);
CREATE INDEX audit_by_sender ON audit (guild_id, member_id, created_at);
CREATE INDEX audit_by_shocker ON audit (guild_id, shocker_id, created_at);
