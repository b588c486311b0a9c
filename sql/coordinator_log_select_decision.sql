SELECT decision FROM coordinator_log WHERE gid = $1
