local threading = require("threading")
local helpers = require("helpers")

-- Start `target` as a daemon thread (so a thread that never stops cannot
-- hold the suite's exit), given an Event that it sets once it runs; cancel
-- it then, and check that it ends cancelled.
local function assert_cancels(target)
  local started = threading.Event()
  local t = threading.Thread{ daemon = true, args = { started }, target = target }
  t:start()
  assert.is_true(started:wait(10))
  t:cancel()
  assert.same({ false, "cancelled" }, { t:join(10) })
  return t
end

describe("Thread", function()
  it("returns the target's results from join", function()
    local t = threading.start(function(a, b) return a + b, "sum" end, 40, 2)
    local ok, sum, label = t:join(10)
    assert.is_true(ok)
    assert.equal(42, sum)
    assert.equal("sum", label)
  end)

  it("keeps nils among the arguments and results", function()
    local t = threading.start(function(...) return select("#", ...), ... end, nil, 2, nil)
    local ok, n, a, b, c = t:join(10)
    assert.is_true(ok)
    assert.equal(3, n)
    assert.is_nil(a)
    assert.equal(2, b)
    assert.is_nil(c)
  end)

  it("accepts the options form with target, args and name", function()
    local t = threading.Thread{ target = function(x) return x * 2 end, args = { 21 }, name = "doubler" }
    assert.equal("doubler", t.name)
    t:start()
    assert.same({ true, 42 }, { t:join(10) })
  end)

  it("honours args.n for trailing nils", function()
    local t = threading.Thread{ target = function(...) return select("#", ...) end, args = { n = 3, 1 } }
    t:start()
    assert.same({ true, 3 }, { t:join(10) })
  end)

  it("is created unstarted with status 'new'", function()
    local t = threading.Thread(function() end)
    assert.equal("new", t.status)
    assert.is_false(t:is_alive())
    assert.is_nil(t.ident)
  end)

  it("returns itself from start", function()
    local t = threading.Thread(function() end)
    assert.equal(t, t:start())
    t:join(10)
  end)

  it("names threads Thread-N by default", function()
    local t = threading.Thread(function() end)
    assert.truthy(t.name:match("^Thread%-%d+$"))
  end)

  it("lets the target see its own name through current_thread", function()
    local t = threading.start(function() return require("threading").current_thread().name end)
    local ok, name = t:join(10)
    assert.is_true(ok)
    assert.equal(t.name, name)
  end)

  it("is alive and running while its target is blocked", function()
    local lock = threading.Lock()
    lock:acquire()
    local t = threading.start(function(l) l:acquire() l:release() end, lock)
    assert.is_true(t:is_alive())
    assert.equal("running", t.status)
    lock:release()
    t:join(10)
    assert.is_false(t:is_alive())
    assert.equal("done", t.status)
  end)

  it("times out a join while the thread still runs", function()
    local lock = threading.Lock()
    lock:acquire()
    local t = threading.start(function(l) l:acquire() l:release() end, lock)
    assert.same({ nil, "timeout" }, { t:join(0.05) })
    lock:release()
    assert.is_true((t:join(10)))
  end)

  it("gives each started thread a distinct integer ident", function()
    local t1 = threading.start(function() return require("threading").get_ident() end)
    local t2 = threading.start(function() return require("threading").get_ident() end)
    local _, id1 = t1:join(10)
    local _, id2 = t2:join(10)
    assert.equal(t1.ident, id1)
    assert.equal(t2.ident, id2)
    assert.are_not.equal(id1, id2)
    assert.are_not.equal(threading.get_ident(), id1)
  end)

  it("reports the OS thread id as native_id", function()
    local t = threading.start(function() end)
    t:join(10)
    assert.equal("number", type(t.native_id))
    assert.are_not.equal(threading.current_thread().native_id, t.native_id)
  end)

  it("names the OS thread after the Thread, cut to the system's limit", function()
    local lock = threading.Lock()
    lock:acquire()
    local t = threading.Thread{ target = function(l) l:acquire() l:release() end, args = { lock },
                                name = "a-rather-long-thread-name" }:start()
    local f = io.open("/proc/self/task/" .. t.native_id .. "/comm")
    local comm = f and f:read("*l")
    if f then f:close() end
    lock:release()
    t:join(10)
    assert.equal("a-rather-long-t", comm)
  end)

  it("returns false and the error with the thread's name and a traceback", function()
    local t = threading.Thread{ target = function() error("boom") end, name = "failing" }:start()
    local ok, err = t:join(10)
    assert.is_false(ok)
    assert.truthy(err:match("^failing: .*boom"))
    assert.truthy(err:match("stack traceback"))
    assert.equal("failed", t.status)
  end)

  it("passes a table error value back as a table", function()
    local t = threading.start(function() error({ code = 7 }) end)
    local ok, err = t:join(10)
    assert.is_false(ok)
    assert.equal(7, err.code)
  end)

  it("returns the same results to every join", function()
    local t = threading.start(function() return { 1, 2 } end)
    local _, a = t:join(10)
    local _, b = t:join(10)
    assert.same({ 1, 2 }, a)
    assert.same(a, b)
  end)

  it("fails the thread when a result cannot be transferred", function()
    local t = threading.start(function() return coroutine.create(function() end) end)
    local ok, err = t:join(10)
    assert.is_false(ok)
    assert.truthy(err:find("cannot transfer value at results[1]: coroutine", 1, true))
  end)

  it("lets threads start and join threads of their own", function()
    local t = threading.start(function()
      local th = require("threading")
      local inner = th.start(function(x) return x + 1 end, 1)
      return inner:join(10)
    end)
    assert.same({ true, true, 2 }, { t:join(10) })
  end)

  it("copies package.path so that require works inside threads", function()
    local t = threading.start(function() return type(require("helpers").same) end)
    assert.same({ true, "function" }, { t:join(10) })
  end)

  it("defaults daemon to false and takes it from the options", function()
    assert.is_false(threading.Thread(function() end).daemon)
    assert.is_true(threading.Thread{ target = function() end, daemon = true }.daemon)
  end)

  it("lets daemon be set before start only", function()
    local t = threading.Thread(function() end)
    t.daemon = true
    assert.is_true(t.daemon)
    t:start()
    t:join(10)
    assert.has_error(function() t.daemon = false end, "cannot set daemon status of an active thread")
  end)

  it("caps a thread's memory with memory_limit", function()
    local t = threading.Thread{ memory_limit = 4 * 1024 * 1024, target = function()
      local hoard = {}
      for i = 1, 1e8 do hoard[i] = ("x"):rep(64) .. i end
      return #hoard
    end }:start()
    local ok, err = t:join(60)
    assert.is_false(ok)
    assert.truthy(err:find("not enough memory", 1, true))
  end)
end)

describe("Thread bad input", function()
  it("rejects a target that is not callable", function()
    assert.has_error(function() threading.Thread(42) end,
      "bad argument #1 to 'Thread' (function expected, got number)")
  end)

  it("rejects an options table without a target", function()
    assert.has_error(function() threading.Thread{ name = "x" } end,
      "bad argument #1 to 'Thread' (field 'target' must be a function)")
  end)

  it("rejects a name that is not a string", function()
    assert.has_error(function() threading.Thread{ target = print, name = 5 } end,
      "bad argument #1 to 'Thread' (field 'name' must be a string)")
  end)

  it("rejects a memory_limit that is not a positive number", function()
    assert.has_error(function() threading.Thread{ target = print, memory_limit = -1 } end,
      "bad argument #1 to 'Thread' (field 'memory_limit' must be a positive number of bytes)")
  end)

  it("refuses an argument that cannot be transferred, naming where it was", function()
    local co = coroutine.create(function() end)
    local args = { conn = co }
    assert.has_error(function() threading.Thread(print, 1, args) end,
      "cannot transfer value at args[2].conn: coroutine")
    assert.equal(co, args.conn)
  end)

  it("names a refused upvalue of the target", function()
    local co = coroutine.create(function() end)
    assert.has_error(function() threading.Thread(function() return co end) end,
      "cannot transfer value at target<upvalue co>: coroutine")
  end)

  it("refuses to start a thread twice", function()
    local t = threading.start(function() end)
    assert.has_error(function() t:start() end, "cannot start a thread twice")
    t:join(10)
  end)

  it("refuses to join a thread before it is started", function()
    local t = threading.Thread(function() end)
    assert.has_error(function() t:join() end,
      "cannot join a thread before it is started")
  end)

  it("refuses to join the current thread", function()
    local t = threading.start(function()
      local th = require("threading")
      return pcall(th.current_thread().join, th.current_thread())
    end)
    local ok, pok, err = t:join(10)
    assert.is_true(ok)
    assert.is_false(pok)
    assert.equal("cannot join the current thread", err)
  end)

  it("refuses a negative join timeout", function()
    local t = threading.start(function() end)
    assert.has_error(function() t:join(-1) end,
      "bad argument #1 to 'join' (timeout must be a non-negative number)")
    t:join(10)
  end)

  it("refuses a method call on something that is not a Thread", function()
    local t = threading.Thread(function() end)
    assert.has_error(function() t.join({}) end,
      "bad argument #1 to 'join' (threading.Thread expected, got table)")
  end)
end)

describe("Thread:cancel", function()
  it("stops a thread blocked in sleep", function()
    local t = threading.start(function() require("threading").sleep(60) end)
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    assert.equal("cancelled", t.status)
  end)

  it("stops a thread blocked on a lock", function()
    local lock = threading.Lock()
    lock:acquire()
    local t = threading.start(function(l) l:acquire() end, lock)
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    lock:release()
  end)

  it("stops a thread blocked in join", function()
    local lock = threading.Lock()
    lock:acquire()
    local inner = threading.start(function(l) l:acquire() l:release() end, lock)
    local t = threading.start(function(th) th:join() end, inner)
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
    lock:release()
    inner:join(10)
  end)

  it("stops a thread running Lua code through a hook", function()
    local started = threading.Lock()
    started:acquire()
    local t = threading.start(function(s)
      s:release()
      local n = 0
      while true do n = n + #tostring(n) end
    end, started)
    started:acquire()
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
  end)

  it("raises the cancellation again at the next blocking call after pcall caught it", function()
    local t = threading.start(function()
      local th = require("threading")
      local ok, err = pcall(th.sleep, 60)
      th.sleep(60)
      return ok, err
    end)
    t:cancel()
    assert.same({ false, "cancelled" }, { t:join(10) })
  end)

  it("raises the cancellation again after a pcall in a CPU loop caught it"
     .. " (pcall swallowed cancel for good)", function()
    local t = assert_cancels(function(ev)
      if jit then jit.off() end       -- compiled traces run no hooks
      ev:set()
      while true do
        pcall(function()
          local n = 0
          while true do n = n + 1 end
        end)
      end
    end)
    assert.equal("cancelled", t.status)
  end)

  it("raises the cancellation again in a pcall's error handler and its caller", function()
    assert_cancels(function(ev)
      if jit then jit.off() end
      ev:set()
      local caught = 0
      while true do
        xpcall(function() while true do end end, function(e) caught = caught + 1 return e end)
      end
    end)
  end)

  it("stops a loop that calls testcancel, compiled or not", function()
    assert_cancels(function(ev)
      local th = require("threading")
      ev:set()
      local n = 0
      while true do
        n = n + 1
        if n % 1024 == 0 then th.testcancel() end
      end
    end)
  end)

  it("lets testcancel return when no cancellation is pending", function()
    local t = threading.start(function()
      local th = require("threading")
      for _ = 1, 1000 do th.testcancel() end
      return "ran"
    end)
    assert.same({ true, "ran" }, { t:join(10) })
  end)

  it("stops a LuaJIT loop compiled to machine code that calls a C function"
     .. " (the hook saw no calls)", function()
    if not jit then
      pending("LuaJIT only: other Luas run hooks everywhere")
      return
    end
    assert_cancels(function(ev)
      local now = require("threading").monotonic   -- a C function of a C module
      ev:set()
      local x = 0
      while true do x = x + now() end
    end)
  end)

  it("stops a LuaJIT loop compiled to machine code that allocates", function()
    if not jit then
      pending("LuaJIT only: other Luas run hooks everywhere")
      return
    end
    assert_cancels(function(ev)
      ev:set()
      local n, keep = 0, {}
      while true do
        keep[n % 8 + 1] = { n }              -- stored, so not optimized away
        n = n + #keep
      end
    end)
  end)

  it("keeps a thread cancelled before start from running its target", function()
    local ran = threading.Value(false)
    local t = threading.Thread(function(v) v:set(true) end, ran)
    t:cancel()
    t:start()
    assert.same({ false, "cancelled" }, { t:join(10) })
    assert.is_false(ran:get())
  end)

  it("leaves a finished thread's results alone", function()
    local t = threading.start(function() return 1 end)
    t:join(10)
    t:cancel()
    assert.same({ true, 1 }, { t:join(10) })
  end)
end)

describe("thread registry", function()
  it("names the main thread MainThread", function()
    assert.equal("MainThread", threading.main_thread().name)
    assert.equal(threading.main_thread(), threading.current_thread())
  end)

  it("returns the same current_thread inside a coroutine", function()
    local co = coroutine.wrap(function() return threading.current_thread() end)
    assert.equal(threading.current_thread(), co())
  end)

  it("lists live threads in enumerate and counts them in active_count", function()
    local lock = threading.Lock()
    lock:acquire()
    local t = threading.start(function(l) l:acquire() l:release() end, lock)
    local found = false
    for _, th in ipairs(threading.enumerate()) do
      if th == t then found = true end
    end
    assert.is_true(found)
    assert.equal(#threading.enumerate(), threading.active_count())
    lock:release()
    t:join(10)
  end)

  it("gives the calling OS thread's id in get_native_id, as native_id does", function()
    local t = threading.start(function()
      local th = require("threading")
      return th.get_native_id(), th.current_thread().native_id
    end)
    local ok, a, b = t:join(10)
    assert.is_true(ok)
    assert.equal(a, b)
    assert.equal(t.native_id, a)
    assert.are_not.equal(threading.get_native_id(), a)
  end)

  it("has TIMEOUT_MAX, the longest timeout kept as a deadline", function()
    assert.equal("number", type(threading.TIMEOUT_MAX))
    assert.truthy(threading.TIMEOUT_MAX >= 1e9)
    assert.is_false(threading.Event():wait(0))
  end)

  it("lets another thread join the main thread, returning once the main script has ended", function()
    local code, out, err = helpers.run_script([[
      local threading = require("threading")
      local main = threading.main_thread()
      threading.start(function(m)
        local ok = m:join()
        print("main joined", ok, m.status, m:is_alive())
      end, main)
      print("script ends")
    ]], { timeout = 60 })
    assert.equal(0, code, err)
    assert.equal("script ends\nmain joined\ttrue\tdone\tfalse\n", out)
  end)

  it("times out joining the main thread while the script runs", function()
    local main = threading.main_thread()
    local t = threading.start(function(m) return m:join(0.05) end, main)
    assert.same({ true, nil, "timeout" }, { t:join(10) })
    assert.has_error(function() main:join(0) end, "cannot join the current thread")
  end)

  it("drops a thread from enumerate once join has returned", function()
    local t = threading.start(function() end)
    t:join(10)
    for _, th in ipairs(threading.enumerate()) do
      assert.are_not.equal(t, th)
    end
  end)
end)

describe("process exit", function()
  it("joins non-daemon threads before the main state closes", function()
    local code, out = helpers.run_script([[
      local threading = require("threading")
      threading.start(function() require("threading").sleep(0.2) print("worker done") end)
      print("main done")
    ]])
    assert.equal(0, code)
    assert.equal("main done\nworker done\n", out)
  end)

  it("abandons daemon threads spinning in Lua without crashing", function()
    local code, out = helpers.run_script([[
      local threading = require("threading")
      local started = threading.Lock()
      started:acquire()
      threading.Thread{ daemon = true, target = function(s)
        s:release()
        local n = 0
        while true do n = n + 1 end
      end, args = { started } }:start()
      started:acquire()
      print("main done")
    ]])
    assert.equal(0, code)
    assert.equal("main done\n", out)
  end)

  it("runs the threads' excepthook before joining them at exit", function()
    local code, _, err = helpers.run_script([[
      local threading = require("threading")
      local t = threading.Thread{ name = "lost", target = function() error("nobody saw this") end }
      t:start()
      t = nil
    ]])
    assert.equal(0, code)
    assert.truthy(err:find("Exception in thread lost:\n", 1, true), err)
    assert.truthy(err:find("nobody saw this", 1, true), err)
  end)
end)

describe("threading.excepthook", function()
  it("prints a failure with its traceback when the thread fails, not when"
     .. " it is collected (report only at GC)", function()
    local code, _, err = helpers.run_script([[
      local threading = require("threading")
      local t = threading.Thread{ name = "worker-7", target = function() error("boom") end }
      t:start()
      local ok = t:join(10)
      io.stderr:write("joined ", tostring(ok), "\n")
      keep = t          -- the handle lives on: only the failure can report
      io.stderr:write("end of script\n")
    ]])
    assert.equal(0, code)
    local report = err:find("Exception in thread worker-7:\n", 1, true)
    assert.truthy(report, err)
    assert.truthy(err:find("boom\nstack traceback:", 1, true), err)
    assert.truthy(report < err:find("joined false", 1, true), err)
  end)

  it("gives a settable hook the thread, its name and the error, in the failing thread", function()
    local q = threading.Queue()
    local main = threading.get_ident()
    local saved = threading.excepthook
    threading.excepthook = function(args)
      local th = require("threading")
      q:put({ args.name, tostring(args.error):match("oops") or args.error,
              args.thread == th.current_thread(), th.get_ident() ~= main })
    end
    local ok, err = pcall(function()
      local t = threading.Thread{ name = "hooked", target = function() error("oops") end }:start()
      assert.same({ "hooked", "oops", true, true }, q:get(10))
      local joined, e = t:join(10)
      assert.is_false(joined)
      assert.truthy(e:find("hooked: ", 1, true))
    end)
    threading.excepthook = saved
    assert(ok, err)
  end)

  it("is silenced with one line while join still returns the error", function()
    local code, _, err = helpers.run_script([[
      local threading = require("threading")
      threading.excepthook = function() end
      local ok, e = threading.start(function() error("quiet") end):join(10)
      io.stdout:write(tostring(ok), " ", tostring(e:match("quiet")), "\n")
    ]])
    assert.equal(0, code)
    assert.equal("", err)
  end)

  it("gives back the function that was set, and the default after nil", function()
    local saved = threading.excepthook
    local hook = function() end
    threading.excepthook = hook
    assert.equal(hook, threading.excepthook)
    threading.excepthook = nil
    assert.equal(threading.__excepthook__, threading.excepthook)
    threading.excepthook = saved
  end)

  it("prints an error raised by the hook itself", function()
    local code, _, err = helpers.run_script([[
      local threading = require("threading")
      threading.excepthook = function() error("hook broke") end
      threading.start(function() error("first") end):join(10)
    ]])
    assert.equal(0, code)
    assert.truthy(err:find("Exception in threading.excepthook:\n", 1, true), err)
    assert.truthy(err:find("hook broke", 1, true), err)
  end)

  it("does not report a cancelled thread", function()
    local code, _, err = helpers.run_script([[
      local threading = require("threading")
      local t = threading.start(function() require("threading").sleep(60) end)
      t:cancel()
      print(t:join(10))
    ]])
    assert.equal(0, code)
    assert.equal("", err)
  end)

  it("refuses a hook that cannot move to other threads", function()
    local co = coroutine.create(function() end)
    assert.has_error(function() threading.excepthook = function() return co end end,
      "cannot transfer value at excepthook<upvalue co>: coroutine")
    local ok, err = pcall(function() threading.excepthook = 42 end)
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #1 to '[%w_.?]*' %(function expected, got number%)"), err)
  end)
end)

-- Regressions: a thread's fields are copied under its mutex and pushed after
-- it is released, so that neither an allocation failure nor a finalizer that
-- reads the thread can strike while the mutex is held.
describe("Thread fields under hostile conditions", function()
  it("formats a failing target's error while the thread is renamed (use-after-free of its name)", function()
    for _ = 1, 60 do
      local go = threading.Event()
      local t = threading.start(function(ev) ev:wait() error("boom") end, go)
      go:set()
      -- rename while the thread fails; now and then a short join lets the
      -- thread run where threads take turns (valgrind runs one at a time)
      local i = 0
      repeat
        i = i + 1
        t.name = ("renamed-%d-"):format(i) .. ("x"):rep(i % 64)
      until i % 64 == 0 and t:join(0.0005) ~= nil
      local ok, err = t:join(10)
      assert.is_false(ok)
      assert.truthy(err:match("^[%w%-]+: .*boom"), err)
    end
  end)

  it("keeps the thread usable when memory runs out while its name is read"
     .. " (mutex held across an allocation)", function()
    if jit then
      pending("LuaJIT states cannot have a memory_limit")
      return
    end
    local code, out, err = helpers.run_script([[
      local threading = require("threading")
      local victim = threading.Thread(function() end)
      victim.name = ("n"):rep(65536)
      local t = threading.Thread{ memory_limit = 2 * 1024 * 1024, args = { victim }, target = function(v)
        -- the call's own frames exist before memory runs out
        local function probe() return v.name end
        pcall(probe)
        -- fill the state's memory, big pieces first, so that nothing is
        -- left (every closure made beforehand: none can be made after)
        local hog, n, size = nil, 0, 0
        local function fill()
          while true do
            n = n + 1
            hog = { hog, ("x"):rep(size) .. n }
          end
        end
        for _, s in ipairs({ 65536, 4096, 256, 16 }) do
          size = s
          pcall(fill)
        end
        local ok, e = pcall(probe)
        return ok, tostring(e):sub(1, 40)
      end }
      t:start()
      print(t:join(10))
      print(#victim.name, tostring(victim):sub(1, 30))
    ]], { timeout = 60 })
    assert.equal(0, code, err)
    assert.equal("true\tfalse\tnot enough memory\n65536\tthreading.Thread: nnnnnnnnnnnn\n", out)
  end)

  it("lets a finalizer read a thread while its fields are being read (mutex"
     .. " held across a collection)", function()
    local code, out, err = helpers.run_script(helpers.with_gc_source .. [[
      local threading = require("threading")
      local t = threading.start(function() end)
      t:join(10)
      t.name = ("long name "):rep(20)
      local seen = 0
      local function doomed()
        return with_gc(function() seen = seen + #tostring(t) + #t.name + #t.status end)
      end
      collectgarbage("setpause", 10)
      collectgarbage("setstepmul", 1000)
      for _ = 1, 2000 do
        for _ = 1, 20 do doomed() end
        local _ = t.name .. tostring(t) .. t.status
      end
      collectgarbage()
      print(seen > 0)
    ]], { timeout = 60 })
    assert.equal(0, code, err)
    assert.equal("true\n", out)
  end)
end)

describe("Thread arguments", function()
  it("refuses a misspelled option (unknown options were silently ignored)", function()
    assert.has_error(function() threading.Thread{ target = function() end, nmae = "x" } end,
      "bad argument #1 to 'Thread' (unknown option 'nmae')")
    assert.has_error(function() threading.Thread{ target = function() end, [1] = 2 } end,
      "bad argument #1 to 'Thread' (option names must be strings, got number)")
  end)

  it("runs a thread on the stack size it asks for", function()
    -- the least stack still holds Lua's deepest nesting of C calls
    local t = threading.Thread{ stack_size = 256 * 1024, target = function()
      local function nest(n)
        if n == 0 then return "bottom" end
        return select(2, pcall(nest, n - 1))
      end
      return nest(150), nest(1000)
    end }
    t:start()
    local ok, shallow, deep = t:join(10)
    assert.is_true(ok)
    assert.equal("bottom", shallow)
    -- Lua's own limit strikes first (LuaJIT's pcall uses no C stack at all)
    assert.truthy(deep == "bottom" or deep:find("stack overflow", 1, true), deep)
  end)

  it("refuses a stack size below the least one or not whole", function()
    for _, bad in ipairs({ 1, 262143, 1e12, 300000.5, -1, "big" }) do
      assert.has_error(function() threading.Thread{ target = function() end, stack_size = bad } end,
        "bad argument #1 to 'Thread' (field 'stack_size' must be 0 or a whole number of bytes"
          .. " from 262144 to 1073741824)")
    end
  end)

  it("sets the stack size of threads started later with threading.stack_size", function()
    local old = threading.stack_size()
    assert.equal(0, old)
    assert.equal(0, threading.stack_size(512 * 1024))
    assert.equal(512 * 1024, threading.stack_size())
    local ok, v = threading.start(function() return 7 end):join(10)
    assert.equal(512 * 1024, threading.stack_size(0))
    assert.same({ true, 7 }, { ok, v })
    assert.has_error(function() threading.stack_size(100) end,
      "bad argument #1 to 'stack_size' (size must be 0 or a whole number of bytes from 262144 to 1073741824)")
  end)

  it("refuses an args.n beyond what a stack takes, without overflowing"
     .. " (signed overflow in lua_checkstack)", function()
    for _, n in ipairs({ 2 ^ 31 - 1, 2 ^ 31, 2 ^ 40, 2 ^ 63, 1e300, 1 / 0 }) do
      assert.has_error(function() threading.Thread({ target = function() end, args = { n = n } }) end,
        "bad argument #1 to 'Thread' (field 'args' has too many values)")
    end
  end)

  it("refuses an args.n that is not a non-negative integer", function()
    for _, n in ipairs({ -1, 2.5, "3", 0 / 0 }) do
      assert.has_error(function() threading.Thread({ target = function() end, args = { n = n } }) end,
        "bad argument #1 to 'Thread' (field 'args.n' must be a non-negative integer)")
    end
  end)
end)
