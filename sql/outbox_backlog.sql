SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
       (SELECT count(*) FROM outbox_dead_letter) AS dead_letters
