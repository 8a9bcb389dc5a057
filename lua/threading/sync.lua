--- with/guard for the synchronization primitives written in C.
return function(threading)
  -- the very functions of Lock and RLock: the cancellation hook knows them
  local with, guard = threading._with, threading._guard
  for _, name in ipairs({ "threading.Condition", "threading.Semaphore", "threading.BoundedSemaphore" }) do
    threading._extend(name, { with = with, guard = guard })
  end
end
