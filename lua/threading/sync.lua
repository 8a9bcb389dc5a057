--- with/guard for the synchronization primitives written in C.
return function(threading)
  -- looked up at call time: the module sets its helpers after loading parts
  local function with(self, fn, ...)
    return threading._with(self, fn, ...)
  end

  local function guard(self)
    return threading._guard(self)
  end

  for _, name in ipairs({ "threading.Condition", "threading.Semaphore", "threading.BoundedSemaphore" }) do
    threading._extend(name, { with = with, guard = guard })
  end
end
