-- Which way each control came in (command, button, reaction, approval, random, vote, roulette),
-- so the audit trail and /history can tell a random-mode control from a typed one.
ALTER TABLE audit ADD COLUMN origin TEXT NOT NULL DEFAULT 'command'
    CHECK (origin IN ('command', 'button', 'reaction', 'approval', 'random', 'vote', 'roulette'));
