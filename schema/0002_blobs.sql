-- 0002_blobs.sql - jobs name their input files by content (DESIGN 4): the
-- sha256 of the audio and image bytes the client sent, stored in the blob
-- store (blobs table, files DIR/blobs/HASH). '' for jobs without them (sim).
ALTER TABLE jobs ADD COLUMN audio_blob TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN image_blob TEXT NOT NULL DEFAULT '';
