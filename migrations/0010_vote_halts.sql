-- A vote a halt (Stop, /panic, a pause, an unshare, an unlink) ended is marked here first, in one
-- quick write, before its row is settled and its message edited: if the bot stops in between, the
-- next start settles it as halted instead of re-arming it.
ALTER TABLE votes ADD COLUMN halted INTEGER NOT NULL DEFAULT 0 CHECK (halted IN (0, 1));
-- (votes.starter_role_ids is kept but no longer decides anything: a won vote is decided with the
-- starter's roles read from Discord at its end.)
