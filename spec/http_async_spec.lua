local threading = require("threading")
local http = require("threading.http")
local async = require("threading.async")
local server = require("server")
local helpers = require("helpers")

-- Functions run in threads see only their upvalues and arguments: busted's
-- environment table is not the globals, so they name no global directly.
local require, select = require, select

-- What the asynchronous path adds to the behaviours that http_spec.lua
-- runs on both paths: futures from plain threads, many requests in flight
-- from one thread or one task, and what a cancel releases.
describe("threading.http asynchronous requests", function()
  local srv, base

  setup(function()
    srv = server.start()
    base = srv.url
  end)

  teardown(function()
    srv:stop()
  end)

  -- Requests still in flight must not outlive the spec that made them.
  after_each(function()
    assert.equal(0, (http._inflight()))
  end)

  describe("futures", function()
    it("get_async returns a Future of the response", function()
      local fut = http.get_async(base .. "/get")
      assert.equal("threading.Future", getmetatable(fut).__name)
      local ok, r = fut:result(30)
      assert.is_true(ok)
      assert.equal(200, r.status)
      assert.equal(base .. "/get", r.url)
      assert.equal("application/json", r.headers["content-type"])
    end)

    it("request_async sends the method and the body", function()
      local ok, r = http.request_async({ url = base .. "/echo", method = "PUT", body = "a\0b" }):result(30)
      assert.is_true(ok)
      assert.equal("a\0b", r.body)
      assert.equal("PUT", r.headers["x-method"])
    end)

    it("keeps the body of the request once the Lua string is collected", function()
      local fut = http.request_async({ url = base .. "/echo", body = ("x"):rep(100000) .. "end" })
      collectgarbage()
      collectgarbage()
      local _, r = fut:result(30)
      assert.equal(100003, #r.body)
      assert.equal("end", r.body:sub(-3))
    end)

    it("completes with nil, message and kind for a failure, as get returns them", function()
      local ok, r, err, kind = http.get_async(base .. "/delay/5", { timeout = 0.1 }):result(30)
      assert.is_true(ok)
      assert.is_nil(r)
      assert.equal("string", type(err))
      assert.equal("timeout", kind)
    end)

    it("is done at once for a url it refuses, with get's message", function()
      local fut = http.get_async("ftp://127.0.0.1/x")
      assert.is_true(fut:done())
      local _, r, err, kind = fut:result()
      local _, err2, kind2 = http.get("ftp://127.0.0.1/x")
      assert.is_nil(r)
      assert.equal(err2, err)
      assert.equal("scheme", kind)
      assert.equal(kind2, kind)
    end)

    it("is done at once for a header with a line break", function()
      local fut = http.get_async(base .. "/get", { headers = { ["X-A"] = "1\r\nX-B: 2" } })
      assert.is_true(fut:done())
      local _, r, _, kind = fut:result()
      assert.is_nil(r)
      assert.equal("header", kind)
    end)

    it("raises get_async's own bad-argument errors", function()
      assert.has_error(function()
        http.get_async(base, 5)
      end, "bad argument #2 to 'get_async' (table expected, got number)")
    end)

    it("raises request_async's own bad-argument errors", function()
      assert.has_error(function()
        http.request_async({ url = base, timout = 1 })
      end, "bad argument #1 to 'request_async' (unknown option 'timout')")
    end)

    it("refuses set_result: the request completes its future", function()
      local fut = http.get_async(base .. "/get")
      local ok, err = pcall(fut.set_result, fut, 1)
      assert.is_false(ok)
      assert.truthy(err:find("an HTTP request's future is completed by its request", 1, true))
      assert.is_true((fut:result(30)))
    end)

    it("completes a request whose future was collected, and frees it", function()
      local weak = setmetatable({ http.get_async(base .. "/delay/0.2") }, { __mode = "v" })
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      assert.equal(0, (http._inflight(0, 30)))
      assert.equal(200, select(2, http.get_async(base .. "/get"):result(30)).status)
    end)

    it("can be awaited with threading.wait from another thread", function()
      local t = threading.start(function(url)
        local h = require("threading.http")
        local futs = {}
        for i = 1, 10 do
          futs[i] = h.get_async(url .. "/status/" .. (200 + i))
        end
        local done, not_done = threading.wait(futs, 30)
        local sum = 0
        for i = 1, 10 do
          sum = sum + select(2, futs[i]:result()).status
        end
        return #done, #not_done, sum
      end, base)
      local ok, done, not_done, sum = t:join(60)
      assert.is_true(ok, tostring(done))
      assert.equal(10, done)
      assert.equal(0, not_done)
      assert.equal(2055, sum)
    end)
  end)

  describe("in flight", function()
    -- The server numbers its connections: requests on distinct connections
    -- were open at the same time, since a client that waits for each
    -- response before the next request reuses one connection.
    local function connections(responses)
      local seen, n = {}, 0
      for _, r in ipairs(responses) do
        local id = r.headers["x-connection-id"]
        if not seen[id] then
          seen[id] = true
          n = n + 1
        end
      end
      return n
    end

    it("keeps 100 requests of one thread in flight at once", function()
      local futs, responses = {}, {}
      for i = 1, 100 do
        futs[i] = http.get_async(base .. "/delay/0.5")
      end
      for i = 1, 100 do
        local ok, r = futs[i]:result(30)
        assert.is_true(ok)
        responses[i] = assert(r)
      end
      assert.equal(100, connections(responses))
    end)

    it("keeps the requests of 50 tasks of one scheduler in flight at once", function()
      local responses = async.run(function()
        local tasks, out = {}, {}
        for i = 1, 50 do
          tasks[i] = async.spawn(function()
            return assert(http.get(base .. "/delay/0.5"))
          end)
        end
        for i = 1, 50 do
          out[i] = select(2, tasks[i]:await())
        end
        return out
      end)
      assert.equal(50, connections(responses))
    end)

    it("lets the other tasks run while a task's request is in flight", function()
      local seen_running
      async.run(function()
        local done = false
        async.spawn(function()
          assert(http.get(base .. "/delay/0.3"))
          done = true
        end)
        async.spawn(function()
          seen_running = not done
        end)
      end)
      assert.is_true(seen_running)
    end)

    it("reuses connections for requests one after another", function()
      local a = select(2, http.get_async(base .. "/get"):result(30))
      local b = select(2, http.get_async(base .. "/get"):result(30))
      assert.equal(a.headers["x-connection-id"], b.headers["x-connection-id"])
    end)
  end)

  -- In a task: spawn a task that requests url, and return it once it is
  -- suspended in its request.
  local function task_in_request(url)
    local started = threading.Event()
    local task = async.spawn(function()
      started:set()
      return http.get(url)
    end)
    started:wait()
    async.sleep(0)
    return task
  end

  describe("in a task of async.run", function()
    it("runs the request in the scheduler's own thread, not the I/O thread", function()
      local total, here
      async.run(function()
        local task = task_in_request(base .. "/delay/0.3")
        total, here = http._inflight()
        task:await()
      end)
      assert.equal(1, total)
      assert.equal(1, here)
    end)

    it("moves a request on while other tasks never stop running", function()
      local rounds, status = 0, nil
      async.run(function()
        local task = async.spawn(function()
          return assert(http.get(base .. "/get")).status
        end)
        -- always ready: the scheduler never sleeps, so the request moves
        -- only if the loop pumps it between rounds as well
        while not task:done() and rounds < 1000000 do
          rounds = rounds + 1
          async.sleep(0)
        end
        status = select(2, task:await())
      end)
      assert.is_true(rounds < 1000000)
      assert.equal(200, status)
    end)

    it("reuses one connection for a task's requests one after another", function()
      local a, b = async.run(function()
        return assert(http.get(base .. "/get")), assert(http.get(base .. "/get"))
      end)
      assert.equal(a.headers["x-connection-id"], b.headers["x-connection-id"])
    end)

    it("reuses the connection of an earlier async.run in the same state", function()
      local a = async.run(function() return assert(http.get(base .. "/get")) end)
      local b = async.run(function() return assert(http.get(base .. "/get")) end)
      assert.equal(a.headers["x-connection-id"], b.headers["x-connection-id"])
    end)

    it("sends a stepped scheduler's requests to the I/O thread", function()
      local s = async.scheduler()
      local task = s:spawn(function() return http.get(base .. "/delay/30") end)
      s:step()
      local total, here = http._inflight()
      assert.equal(1, total)
      assert.equal(0, here)
      assert.is_true(task:cancel())
      s:close()
    end)
  end)

  describe("cancellation", function()
    it("cancels a request in flight through its future", function()
      local fut = http.get_async(base .. "/delay/30")
      assert.is_true(fut:cancel())
      assert.is_true(fut:cancelled())
      assert.same({ false, "cancelled" }, { fut:result(1) })
      assert.equal(0, (http._inflight()))
    end)

    it("does not cancel a request that has completed", function()
      local fut = http.get_async(base .. "/get")
      assert.is_true((fut:result(30)))
      assert.is_false(fut:cancel())
      assert.equal(200, select(2, fut:result()).status)
    end)

    it("cancels the request of a task that is cancelled", function()
      local err
      async.run(function()
        local task = task_in_request(base .. "/delay/30")
        assert.equal(1, (http._inflight()))
        task:cancel()
        err = select(2, task:await())
      end)
      assert.equal("cancelled", err)
      assert.equal(0, (http._inflight()))
    end)

    it("cancels the requests of a scheduler whose thread is cancelled", function()
      local asked = threading.Event()
      local t = threading.start(function(url, ev)
        local a = require("threading.async")
        local h = require("threading.http")
        return a.run(function()
          a.spawn(function()
            return h.get(url .. "/delay/30")
          end)
          a.spawn(function()
            ev:set() -- runs once the first task waits on its request
          end)
        end)
      end, base, asked)
      assert.is_true(asked:wait(30))
      assert.equal(1, (http._inflight()))
      t:cancel()
      assert.is_false((t:join(30)))
      assert.equal("cancelled", t.status)
      assert.equal(0, (http._inflight()))
    end)

    it("keeps serving after many cancels in a row", function()
      local futs = {}
      for i = 1, 200 do
        futs[i] = http.get_async(base .. "/delay/30")
      end
      for i = 200, 1, -1 do
        futs[i]:cancel()
      end
      assert.equal(0, (http._inflight()))
      assert.equal(200, select(2, http.get_async(base .. "/get"):result(30)).status)
    end)
  end)

  describe("fork()", function()
    -- A child that reused a connection of its parent's would mix their
    -- requests on one socket; the child must open its own and leave the
    -- parent's alone (closing it would close a TLS session under the
    -- parent). The server numbers its connections.
    local function child_and_parent(get)
      local code, out, err = helpers.run_script(([[
        local async = require("threading.async")
        local http = require("threading.http")
        local posix = require("testfork")
        local function get(url)
          %s
        end
        local url = %q
        local before = assert(get(url)).headers["x-connection-id"]
        local pid = posix.fork()
        if pid == 0 then
          posix.alarm(30)
          local r = get(url)
          io.write("child ", tostring(r and r.status), " ",
            tostring(r and r.headers["x-connection-id"] ~= before), "\n")
          io.flush()
          posix._exit(0)
        end
        io.write("child status ", posix.waitpid(pid), "\n")
        local r = assert(get(url))
        io.write("parent ", r.status, " ", tostring(r.headers["x-connection-id"] == before), "\n")
      ]]):format(get, base .. "/get"), { timeout = 60 })
      assert.equal(0, code, err)
      return out
    end

    it("gives a child its own connection for async.run's requests (bug)", function()
      assert.equal("child 200 true\nchild status 0\nparent 200 true\n",
        child_and_parent("return async.run(function() return http.get(url) end)"))
    end)

    it("gives a child its own connection for blocking requests (bug)", function()
      assert.equal("child 200 true\nchild status 0\nparent 200 true\n",
        child_and_parent("return http.get(url)"))
    end)

    it("serves requests in a child that forked after requests in the parent", function()
      local code, out, err = helpers.run_script(([[
        local http = require("threading.http")
        local posix = require("testfork")
        assert(http.get_async(%q):result(30))
        local pid = posix.fork()
        if pid == 0 then
          posix.alarm(30)
          local ok, r = http.get_async(%q):result(20)
          io.write("child ", tostring(ok and r and r.status), "\n")
          io.flush()
          posix._exit(0)
        end
        io.write("child status ", posix.waitpid(pid), "\n")
      ]]):format(base .. "/get", base .. "/get"), { timeout = 60 })
      assert.equal(0, code, err)
      assert.equal("child 200\nchild status 0\n", out)
    end)
  end)
end)
