-- How far each server's clock is from keepwatch's, as its agent last showed.
ALTER TABLE servers ADD COLUMN clock_offset_ms INTEGER NOT NULL DEFAULT 0;
