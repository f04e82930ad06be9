-- Delivery failures were stored with the whole error, which could quote a
-- channel's URL (and a key in it), a receiver's answer or the resolver's
-- address, and viewers read it. Only generic classes are stored now; the
-- old texts become the most generic one.
UPDATE notifications SET last_error = 'delivery failed'
WHERE last_error <> '' AND ((state IN ('pending', 'failed') AND attempts > 0) OR last_error LIKE '%://%');
