local threading = require("threading")
local http_module = require("threading.http")
local async = require("threading.async")
local server = require("server")
local helpers = require("helpers")

-- Functions run in threads see only their upvalues and arguments: busted's
-- environment table is not the globals, so they name no global directly.
local pcall = pcall

describe("threading.http", function()
  local srv, base

  setup(function()
    srv = server.start()
    base = srv.url
  end)

  teardown(function()
    srv:stop()
  end)

  -- Run fn(i, ...) in n threads at once; returns a list of each thread's
  -- results as packed tables.
  local function in_threads(n, fn, ...)
    local threads, results = {}, {}
    for i = 1, n do
      threads[i] = threading.start(fn, i, ...)
    end
    local function keep(i, ok, ...)
      assert(ok == true, tostring((...)))
      results[i] = { n = select("#", ...), ... }
    end
    for i = 1, n do
      keep(i, threads[i]:join(60))
    end
    return results
  end

  -- The behaviours every path shares. `http` holds get and request; `path`
  -- is "thread" (the blocking calls) or "task" (inside a threading.async
  -- task, where a request runs on the I/O thread of src/http_io.c and only
  -- the task waits).
  local function behaves(http, path)
    describe("responses", function()
      it("get returns the status, body, headers, final url and elapsed time", function()
        local r = assert(http.get(base .. "/get"))
        assert.equal(200, r.status)
        assert.truthy(r.body:find('"url": "/get"', 1, true))
        assert.equal("application/json", r.headers["content-type"])
        assert.equal(base .. "/get", r.url)
        assert.equal("number", type(r.elapsed))
        assert.is_true(r.elapsed >= 0)
      end)

      it("returns a 404 as a response, not an error", function()
        local r, err = http.get(base .. "/status/404")
        assert.is_nil(err)
        assert.equal(404, r.status)
      end)

      it("returns a 500 as a response, not an error", function()
        local r, err = http.get(base .. "/status/500")
        assert.is_nil(err)
        assert.equal(500, r.status)
      end)

      it("names response headers in lower case", function()
        local r = assert(http.get(base .. "/get"))
        assert.equal("1", r.headers["x-request-number"] and "1" or nil)
        assert.is_nil(r.headers["X-Request-Number"])
      end)

      it("returns a large body intact", function()
        local r = assert(http.get(base .. "/bytes/3000000"))
        assert.equal(3000000, #r.body)
        assert.equal("abcdefghijklmnopqrstuvwxyzabc", r.body:sub(1, 29))
        assert.equal(string.char(("a"):byte() + (3000000 - 1) % 26), r.body:sub(-1))
      end)

      it("decodes a chunked body", function()
        local r = assert(http.get(base .. "/stream-bytes/100000"))
        assert.equal(100000, #r.body)
        assert.equal("xyzab", r.body:sub(24, 28))
      end)

      it("accepts a body exactly max_body_bytes long", function()
        local r = assert(http.get(base .. "/bytes/1000", { max_body_bytes = 1000 }))
        assert.equal(1000, #r.body)
      end)

      it("accepts timeouts of math.huge as no limit", function()
        local r = assert(http.get(base .. "/get", { timeout = math.huge, connect_timeout = math.huge }))
        assert.equal(200, r.status)
      end)
    end)

    describe("redirects", function()
      it("follows redirects and reports the final url", function()
        local r = assert(http.get(base .. "/redirect/3"))
        assert.equal(200, r.status)
        assert.equal(base .. "/get", r.url)
      end)

      it("follows at most ten redirects by default", function()
        assert.equal(200, assert(http.get(base .. "/redirect/10")).status)
        local r, err, kind = http.get(base .. "/redirect/11")
        assert.is_nil(r)
        assert.equal("string", type(err))
        assert.equal("redirects", kind)
      end)

      it("returns the redirect itself when follow_redirects is false", function()
        local r = assert(http.get(base .. "/redirect/2", { follow_redirects = false }))
        assert.equal(302, r.status)
        assert.equal("/redirect/1", r.headers.location)
        assert.equal(base .. "/redirect/2", r.url)
      end)

      it("takes a number as the most redirects to follow", function()
        assert.equal(200, assert(http.get(base .. "/redirect/2", { follow_redirects = 2 })).status)
        local _, _, kind = http.get(base .. "/redirect/3", { follow_redirects = 2 })
        assert.equal("redirects", kind)
      end)

      it("refuses a redirect to a file url", function()
        local r, err, kind = http.get(base .. "/redirect-to?url=file%3A%2F%2F%2Fetc%2Fpasswd")
        assert.is_nil(r)
        assert.equal("string", type(err))
        assert.equal("scheme", kind)
      end)

      it("refuses a redirect to an ftp url", function()
        local _, _, kind = http.get(base .. "/redirect-to?url=ftp%3A%2F%2F127.0.0.1%2Fx")
        assert.equal("scheme", kind)
      end)
    end)

    describe("requests", function()
      it("sends the headers given in opts", function()
        local r = assert(http.get(base .. "/headers", { headers = { ["X-Custom"] = "yes" } }))
        assert.truthy(r.body:find('"X-Custom": "yes"', 1, true))
      end)

      it("sends a number as a header value in decimal", function()
        local r = assert(http.get(base .. "/headers", { headers = { ["X-Count"] = 42 } }))
        assert.truthy(r.body:find('"X-Count": "42"', 1, true))
      end)

      it("sends an empty header value", function()
        local r = assert(http.get(base .. "/headers", { headers = { ["X-Empty"] = "" } }))
        assert.truthy(r.body:find('"X-Empty": ""', 1, true))
      end)

      it("leaves out a default header given as false", function()
        local r = assert(http.get(base .. "/headers", { headers = { Accept = false } }))
        assert.falsy(r.body:find('"Accept":', 1, true))
      end)

      it("sends user_agent as the User-Agent header", function()
        local r = assert(http.get(base .. "/headers", { user_agent = "spec-agent/1" }))
        assert.truthy(r.body:find('"User-Agent": "spec-agent/1"', 1, true))
      end)

      it("sends the method and the binary body given to request", function()
        local body = "a\0b\255c"
        local r = assert(http.request({ url = base .. "/echo", method = "PUT", body = body }))
        assert.equal(200, r.status)
        assert.equal("PUT", r.headers["x-method"])
        assert.equal(body, r.body)
      end)

      it("posts when request is given a body and no method", function()
        local r = assert(http.request({ url = base .. "/echo", body = "x=1" }))
        assert.equal("POST", r.headers["x-method"])
        assert.equal("x=1", r.body)
      end)

      it("sends an empty body with a length for a POST without a body", function()
        local r = assert(http.request({ url = base .. "/headers", method = "POST" }))
        assert.truthy(r.body:find('"Content-Length": "0"', 1, true))
      end)

      it("upper-cases the method name", function()
        local r = assert(http.request({ url = base .. "/echo", method = "delete" }))
        assert.equal("DELETE", r.headers["x-method"])
      end)

      it("sends an upload of several mebibytes intact", function()
        local body = string.rep("0123456789abcdef", 256 * 1024)
        local r = assert(http.request({ url = base .. "/echo", method = "POST", body = body }))
        assert.equal(#body, #r.body)
        assert.equal(body, r.body)
      end)

      it("returns headers and an empty body for HEAD", function()
        local r = assert(http.request({ url = base .. "/bytes/500", method = "HEAD" }))
        assert.equal(200, r.status)
        assert.equal("500", r.headers["content-length"])
        assert.equal("", r.body)
      end)

      it("accepts the request options of get: timeout, connect_timeout, verify", function()
        local r = assert(http.request({
          url = base .. "/get", timeout = 10, connect_timeout = 5, verify = true,
        }))
        assert.equal(200, r.status)
      end)
    end)

    if path == "thread" then
      describe("connections", function()
        it("reuses one connection for sequential requests from one thread", function()
          local first = assert(http.get(base .. "/get"))
          local second = assert(http.get(base .. "/status/204"))
          local third = assert(http.get(base .. "/get"))
          assert.equal(first.headers["x-connection-id"], second.headers["x-connection-id"])
          assert.equal(first.headers["x-connection-id"], third.headers["x-connection-id"])
          assert.equal(tonumber(first.headers["x-request-number"]) + 2,
            tonumber(third.headers["x-request-number"]))
        end)

        it("reuses a connection within each thread and never across threads", function()
          local results = in_threads(4, function(_, url)
            local a, b = http.get(url .. "/get"), http.get(url .. "/get")
            return a and a.headers["x-connection-id"], b and b.headers["x-connection-id"]
          end, base)
          local seen = {}
          for _, ids in ipairs(results) do
            assert.is_string(ids[1])
            assert.equal(ids[1], ids[2])
            assert.is_nil(seen[ids[1]])
            seen[ids[1]] = true
          end
        end)

        it("keeps the connection cache usable after a failed request", function()
          assert.is_nil(http.get(base .. "/delay/5", { timeout = 0.2 }))
          assert.is_nil(http.get(base .. "/close"))
          assert.equal(200, assert(http.get(base .. "/get")).status)
        end)
      end)
    end

    describe("proxies", function()
      -- The local server stands in for a forward proxy: it serves a target in
      -- absolute form by its path, and /get reports the target it received.
      local function target(r)
        return r.body:match('"url": "([^"]*)"')
      end

      -- GET base/get in a fresh interpreter whose proxy variables are only
      -- those of `env`; returns the target the server received (or the error).
      local function get_with_env(env, opts_source)
        local vars = {
          http_proxy = false, HTTP_PROXY = false, https_proxy = false, HTTPS_PROXY = false,
          all_proxy = false, ALL_PROXY = false, no_proxy = false, NO_PROXY = false,
        }
        for k, v in pairs(env) do
          vars[k] = v
        end
        local code, out, err = helpers.run_script(([[
          local r, err = require("threading.http").get(%q, %s)
          io.write(r and r.body:match('"url": "([^"]*)"') or tostring(err))
        ]]):format(base .. "/get", opts_source), { env = vars })
        assert.equal(0, code, err)
        return out
      end

      it("sends the request to the proxy given as proxy, in absolute form", function()
        -- the host does not exist: only a proxy can answer for it
        local r = assert(http.get("http://proxied.invalid/get", { proxy = base }))
        assert.equal(200, r.status)
        assert.equal("http://proxied.invalid/get", target(r))
      end)

      it("sends a request without a proxy as a plain path", function()
        assert.equal("/get", target(assert(http.get(base .. "/get"))))
      end)

      it("uses the proxy of the http_proxy environment variable by default", function()
        assert.equal(base .. "/get", get_with_env({ http_proxy = base }, "nil"))
      end)

      it("uses the proxy of the ALL_PROXY environment variable by default", function()
        assert.equal(base .. "/get", get_with_env({ ALL_PROXY = base }, "nil"))
      end)

      it("bypasses the proxy of http_proxy when proxy is false", function()
        assert.equal("/get", get_with_env({ http_proxy = base }, "{ proxy = false }"))
      end)

      it("bypasses the proxy of ALL_PROXY when proxy is false", function()
        assert.equal("/get", get_with_env({ ALL_PROXY = base }, "{ proxy = false }"))
      end)

      it("uses the proxy given as proxy even for a host listed in no_proxy", function()
        local opts = ("{ proxy = %q }"):format(base)
        assert.equal(base .. "/get", get_with_env({ no_proxy = "*" }, opts))
      end)

      it("returns a connect failure when the proxy refuses connections", function()
        local gone = server.start()
        local proxy = gone.url
        gone:stop()
        local r, err, kind = http.get(base .. "/get", { proxy = proxy })
        assert.is_nil(r)
        assert.equal("string", type(err))
        assert.equal("connect", kind)
      end)

      it("raises a bad-argument error for a proxy that is neither a string nor false", function()
        assert.has_error(function()
          http.get(base .. "/get", { proxy = true })
        end, "bad argument #2 to 'get' (field 'proxy' must be a string or false, got boolean)")
      end)

      it("raises a bad-argument error for a proxy with a line break", function()
        assert.has_error(function()
          http.request({ url = base .. "/get", proxy = base .. "\r\nX: y" })
        end, "bad argument #1 to 'request' (field 'proxy' must not contain line breaks or zero bytes)")
      end)
    end)

    if path == "thread" then
      describe("threads", function()
        it("serves requests from many threads at once", function()
          local results = in_threads(50, function(i, url)
            local r, err = http.get(url .. "/status/" .. (200 + i))
            return r and r.status, err
          end, base)
          for i = 1, 50 do
            assert.equal(200 + i, results[i][1])
          end
        end)

        it("overlaps the waits of requests made from several threads", function()
          local t0 = threading.monotonic()
          local results = in_threads(8, function(_, url)
            local r, err = http.get(url .. "/delay/1")
            return r and r.status, err
          end, base)
          local elapsed = threading.monotonic() - t0
          for i = 1, 8 do
            assert.equal(200, results[i][1])
          end
          -- one after another would take 8 s; only a gross failure trips this
          assert.is_true(elapsed < 6, "took " .. elapsed .. " s")
        end)

        it("works in threads of a process whose main state never loads it", function()
          -- regression: each closing thread state unloaded libcurl, the next reloaded it
          local code, out, err = helpers.run_script(([[
            local threading = require("threading")
            local function fetch(url)
              return require("threading.http").get(url).status
            end
            for _ = 1, 5 do
              local _, status = threading.start(fetch, %q):join(30)
              io.write(tostring(status), " ")
            end
          ]]):format(base .. "/get"))
          assert.equal(0, code, err)
          assert.equal("200 200 200 200 200 ", out)
        end)

        it("stops a request when its thread is cancelled", function()
          local started = threading.Value(false)
          local t = threading.start(function(url, flag)
            flag:set(true)
            return http.get(url .. "/delay/30")
          end, base, started)
          while not started:get() do
            threading.sleep(0.01)
          end
          t:cancel()
          local ok, err = t:join(20)
          assert.is_false(ok)
          assert.equal("cancelled", err)
          assert.equal("cancelled", t.status)
        end)

        it("is a cancellation point that pcall cannot swallow", function()
          local started = threading.Value(false)
          local t = threading.start(function(url, flag)
            flag:set(true)
            pcall(http.get, url .. "/delay/30")
            return http.get(url .. "/delay/30")
          end, base, started)
          while not started:get() do
            threading.sleep(0.01)
          end
          t:cancel()
          local ok, err = t:join(20)
          assert.is_false(ok)
          assert.equal("cancelled", err)
        end)
      end)
    end

    describe("bad input", function()
      it("returns nil and a message for a malformed url", function()
        local r, err, kind = http.get("http//no-colon")
        assert.is_nil(r)
        assert.truthy(err:find("malformed URL", 1, true))
        assert.equal("url", kind)
      end)

      it("returns nil and a message for a url with spaces", function()
        local _, _, kind = http.get("http://127.0.0.1/a b")
        assert.equal("url", kind)
      end)

      it("refuses the file, ftp and gopher schemes", function()
        for _, url in ipairs({ "file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1/" }) do
          local r, err, kind = http.get(url)
          assert.is_nil(r)
          assert.truthy(err:find("unsupported scheme", 1, true))
          assert.equal("scheme", kind)
        end
      end)

      it("returns nil and a message for an unknown host", function()
        local r, err, kind = http.get("http://no-such-host.invalid/", { timeout = 20 })
        assert.is_nil(r)
        assert.equal("string", type(err))
        assert.equal("resolve", kind)
      end)

      it("returns nil and a message when the connection is refused", function()
        local gone = server.start()
        local url = gone.url .. "/get"
        gone:stop()
        local r, err, kind = http.get(url)
        assert.is_nil(r)
        assert.equal("string", type(err))
        assert.equal("connect", kind)
      end)

      it("returns nil and a message when the timeout passes", function()
        local r, err, kind = http.get(base .. "/delay/10", { timeout = 0.3 })
        assert.is_nil(r)
        assert.truthy(err:lower():find("timed out", 1, true))
        assert.equal("timeout", kind)
      end)

      it("returns nil and a message for an announced body over max_body_bytes", function()
        local r, err, kind = http.get(base .. "/bytes/2000", { max_body_bytes = 1000 })
        assert.is_nil(r)
        assert.truthy(err:find("max_body_bytes", 1, true))
        assert.equal("too_large", kind)
      end)

      it("returns nil and a message for a streamed body over max_body_bytes", function()
        local r, _, kind = http.get(base .. "/stream-bytes/300000", { max_body_bytes = 1000 })
        assert.is_nil(r)
        assert.equal("too_large", kind)
      end)

      it("returns nil and a message when the server closes mid-response", function()
        local r, err, kind = http.get(base .. "/close")
        assert.is_nil(r)
        assert.equal("string", type(err))
        assert.equal("closed", kind)
      end)

      it("returns nil and a message when the server closes without answering", function()
        local r, _, kind = http.get(base .. "/drop")
        assert.is_nil(r)
        assert.equal("closed", kind)
      end)

      it("returns nil and a message for a header value with a line break", function()
        local r, err, kind = http.get(base .. "/get", { headers = { ["X-Evil"] = "a\r\nInjected: 1" } })
        assert.is_nil(r)
        assert.truthy(err:find("X-Evil", 1, true))
        assert.equal("header", kind)
      end)

      it("refuses a user_agent with a line break instead of injecting a header (bug)", function()
        -- regression: user_agent went to libcurl unchecked, and its CR LF
        -- started a header of the caller's choosing
        local r, err, kind = http.get(base .. "/headers", { user_agent = "x\r\nX-Injected: yes" })
        assert.falsy(r and r.body:find('"X-Injected"', 1, true), "the injected header reached the server")
        assert.is_nil(r)
        assert.truthy(err:find("user_agent", 1, true))
        assert.equal("header", kind)
      end)

      it("refuses a user_agent with a zero byte instead of cutting it short (bug)", function()
        local r, _, kind = http.get(base .. "/headers", { user_agent = "agent\0hidden" })
        assert.falsy(r and r.body:find('"User-Agent": "agent"', 1, true), "a truncated agent was sent")
        assert.is_nil(r)
        assert.equal("header", kind)
      end)

      it("returns nil and a message for a header name that is not a token", function()
        local _, _, kind = http.get(base .. "/get", { headers = { ["Bad Name"] = "x" } })
        assert.equal("header", kind)
      end)

      it("raises a bad-argument error for a header value that is not a string", function()
        assert.has_error(function()
          http.get(base .. "/get", { headers = { ["X-Table"] = {} } })
        end, "bad argument #2 to 'get' (header 'X-Table' must be a string, got table)")
      end)

      it("raises a bad-argument error for a header value of true", function()
        local ok, err = pcall(function()
          http.get(base .. "/get", { headers = { ["X-Bool"] = true } })
        end)
        assert.is_false(ok)
        assert.truthy(err:find("bad argument #2 to 'get'", 1, true))
      end)

      it("raises a bad-argument error for a url that is not a string", function()
        assert.has_error(function()
          http.get({})
        end, "bad argument #1 to 'get' (string expected, got table)")
      end)

      it("raises a bad-argument error for options that are not a table", function()
        assert.has_error(function()
          http.get(base, 5)
        end, "bad argument #2 to 'get' (table expected, got number)")
      end)

      it("raises a bad-argument error for a negative timeout", function()
        assert.has_error(function()
          http.get(base, { timeout = -1 })
        end, "bad argument #2 to 'get' (field 'timeout' must be a positive number of seconds, got number)")
      end)

      it("raises a bad-argument error for a request without a url", function()
        assert.has_error(function()
          http.request({ method = "GET" })
        end, "bad argument #1 to 'request' (field 'url' must be a string, got nil)")
      end)

      it("raises a bad-argument error for a method that is not a token", function()
        assert.has_error(function()
          http.request({ url = base, method = "GE T" })
        end, "bad argument #1 to 'request' (field 'method' must be an HTTP method name)")
      end)

      it("raises a bad-argument error when get is given a method or a body", function()
        assert.has_error(function()
          http.get(base, { body = "x" })
        end, "bad argument #2 to 'get' (get takes no method or body (use http.request))")
      end)

      it("raises a bad-argument error for a cainfo that is not a string", function()
        assert.has_error(function()
          http.get(base .. "/get", { cainfo = true })
        end, "bad argument #2 to 'get' (field 'cainfo' must be a string, got boolean)")
      end)

      it("raises a bad-argument error for a capath with a zero byte", function()
        assert.has_error(function()
          http.request({ url = base .. "/get", capath = "/etc\0/x" })
        end, "bad argument #1 to 'request' (field 'capath' must be a non-empty path without zero bytes)")
      end)

      it("raises a bad-argument error for an empty cainfo", function()
        assert.has_error(function()
          http.get(base .. "/get", { cainfo = "" })
        end, "bad argument #2 to 'get' (field 'cainfo' must be a non-empty path without zero bytes)")
      end)

      it("raises a bad-argument error for a misspelled option given to get (bug)", function()
        -- regression: unknown option names were ignored, so a typo silently
        -- left the default in place
        assert.has_error(function()
          http.get(base .. "/get", { timout = 1 })
        end, "bad argument #2 to 'get' (unknown option 'timout')")
      end)

      it("raises a bad-argument error for a misspelled option given to request (bug)", function()
        assert.has_error(function()
          http.request({ url = base .. "/get", timout = 1 })
        end, "bad argument #1 to 'request' (unknown option 'timout')")
      end)

      it("raises a bad-argument error for an option name that is not a string", function()
        assert.has_error(function()
          http.get(base .. "/get", { "timeout" })
        end, "bad argument #2 to 'get' (option names must be strings, got number)")
      end)

      it("raises a bad-argument error for a url given to get as an option", function()
        assert.has_error(function()
          http.get(base .. "/get", { url = base .. "/status/500" })
        end, "bad argument #2 to 'get' (get takes its url as argument #1, not as an option)")
      end)

      it("accepts every documented option in one request", function()
        local r = assert(http.request({
          url = base .. "/echo", method = "PUT", body = "x", headers = { ["X-A"] = "1" },
          timeout = 10, connect_timeout = 5, follow_redirects = 2, max_body_bytes = 100,
          verify = true, cainfo = "/nonexistent/ca.pem", capath = "/nonexistent",
          proxy = false, user_agent = "spec",
        }))
        assert.equal("x", r.body)
      end)

      it("raises a bad-argument error for a body that is not a string", function()
        assert.has_error(function()
          http.request({ url = base, body = 5 })
        end, "bad argument #1 to 'request' (field 'body' must be a string, got number)")
      end)
    end)
  end

  describe("in the calling thread", function()
    behaves(http_module, "thread")
  end)

  describe("inside a threading.async task", function()
    behaves(helpers.in_task_http(async, http_module), "task")
  end)
end)
