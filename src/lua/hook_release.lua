-- hook_release: a webhook's message id given back, its update could not
-- be kept (ngx_http_fanbase_txn_hook_release).
--
-- KEYS[1] T
-- ARGV[1] msg_id
--
-- {0}

redis.call('DEL', key_h(ARGV[1]))

return { OK }
