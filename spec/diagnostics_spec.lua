local threading = require("threading")

-- Poll a diagnostic until it reports what we wait for (the threads block
-- at a moment we cannot be told about); bounded so a bug fails, not hangs.
local function poll(fn)
  for _ = 1, 500 do
    local result = fn()
    if result then return result end
    threading.sleep(0.01)
  end
end

-- Two threads that take two locks in opposite order and deadlock.
local function deadlock()
  local a, b = threading.Lock(), threading.Lock()
  local ready = threading.Value(0)
  local function worker(first, second, r)
    first:acquire()
    r:add(1)
    while r:get() < 2 do end
    second:acquire()
  end
  local t1 = threading.Thread{ name = "alice", target = worker, args = { a, b, ready } }:start()
  local t2 = threading.Thread{ name = "bob", target = worker, args = { b, a, ready } }:start()
  return t1, t2, a, b
end

describe("threading.waits", function()
  it("reports a thread blocked on a lock, with the lock and its owner", function()
    local lock = threading.Lock()
    local release = threading.Lock()
    release:acquire()
    local holder = threading.Thread{ name = "holder", target = function(l, r)
      l:acquire()
      r:acquire()
      l:release()
      r:release()
    end, args = { lock, release } }:start()
    poll(function() return lock:locked() end)
    local waiter = threading.Thread{ name = "waiter", target = function(l) l:acquire() l:release() end,
                                     args = { lock } }:start()
    local entry = poll(function()
      for _, w in ipairs(threading.waits()) do
        if w.name == "waiter" and w.blocked_on then return w end
      end
    end)
    release:release()
    holder:join(10)
    waiter:join(10)
    assert.equal("running", entry.status)
    assert.equal(lock, entry.object)
    assert.equal("holder", entry.owner)
    assert.truthy(entry.blocked_on:match("^threading%.Lock "))
  end)

  it("reports a sleeping thread as blocked on sleep", function()
    local t = threading.Thread{ name = "sleeper",
                                target = function() require("threading").sleep(60) end }:start()
    local entry = poll(function()
      for _, w in ipairs(threading.waits()) do
        if w.name == "sleeper" and w.blocked_on then return w end
      end
    end)
    t:cancel()
    t:join(10)
    assert.equal("sleep", entry.blocked_on)
  end)

  it("lists the main thread with nothing blocked", function()
    local main
    for _, w in ipairs(threading.waits()) do
      if w.name == "MainThread" then main = w end
    end
    assert.equal("running", main.status)
    assert.is_nil(main.blocked_on)
  end)
end)

describe("threading.deadlocks", function()
  it("finds no cycle when no thread waits on a lock", function()
    assert.same({}, threading.deadlocks())
  end)

  it("finds two threads taking two locks in opposite order", function()
    local t1, t2 = deadlock()
    local cycles = poll(function()
      local found = threading.deadlocks()
      if #found > 0 then return found end
    end)
    t1:cancel()
    t2:cancel()
    t1:join(10)
    t2:join(10)
    assert.equal(1, #cycles)
    local names = cycles[1].threads
    table.sort(names)
    assert.same({ "alice", "bob" }, names)
    assert.truthy(cycles[1].description:find("alice waits for threading.Lock", 1, true))
    assert.truthy(cycles[1].description:find("held by bob", 1, true))
  end)

  it("lets cancel break a deadlock", function()
    local t1, t2 = deadlock()
    poll(function() return #threading.deadlocks() > 0 end)
    t1:cancel()
    t2:cancel()
    assert.same({ false, "cancelled" }, { t1:join(10) })
    assert.same({ false, "cancelled" }, { t2:join(10) })
    assert.same({}, threading.deadlocks())
  end)
end)
