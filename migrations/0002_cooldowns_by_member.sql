-- A cooldown is per member and shocker across guilds: look it up without the guild.
CREATE INDEX cooldowns_by_member ON cooldowns (member_id, shocker_id, last_at);
