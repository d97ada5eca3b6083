-- Stand-in for migration 0003, which belongs to another branch and had not reached main when
-- h4 was finished: it lets 0004 apply on h4 alone. Drop this file when the real 0003 is merged.
SELECT 1;
