--- The local HTTP test server (spec/support/http_server.c, built by `make`
-- into build/tools/http_server) for the specs, the examples and the
-- benchmarks.
--
--   local server = require("server")
--   local srv = server.start()       -- on a free port of 127.0.0.1
--   http.get(srv.url .. "/get")
--   srv:stop()
--
-- start() returns once the server accepts connections: it waits for the port
-- line the server prints, never for a fixed time. The server also ends when
-- the OS thread that started it ends, so call start() and stop() from the
-- main thread. THREADING_HTTP_SERVER overrides the binary's path.
local server = {}

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The directory of this file: the binary is found relative to it, so the
-- helper works from any working directory.
local function here()
  local source = debug.getinfo(1, "S").source
  return source:match("^@(.*)/[^/]*$") or "."
end

--- The path of the server binary.
function server.binary()
  return os.getenv("THREADING_HTTP_SERVER") or (here() .. "/../../build/tools/http_server")
end

local Server = {}
Server.__index = Server

--- Stop the server and wait for it to exit; safe to call twice.
function Server:stop()
  if self.pipe then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.pipe = nil
  end
end

--- Start a server; returns an object with `url` ("http://127.0.0.1:PORT"),
-- `port`, `pid` and `stop()`.
function server.start()
  local bin = server.binary()
  local f = io.open(bin, "rb")
  if not f then
    error("the HTTP test server is not built (run make): " .. bin, 2)
  end
  f:close()
  -- the shell prints its pid, then becomes the server: same pid
  local pipe = assert(io.popen("echo $$; exec " .. shell_quote(bin) .. " --exit-with-parent", "r"))
  local pid = tonumber(pipe:read("*l"))
  local port = tonumber(pipe:read("*l"))
  if not pid or not port then
    pipe:close()
    error("the HTTP test server did not start: " .. bin, 2)
  end
  return server.process(pipe, pid, port, "http")
end

--- A server process read through `pipe` (its pid and port known): an
-- object with `url` ("<scheme>://127.0.0.1:PORT"), `port`, `pid` and
-- `stop()`. For other local servers the specs start (spec/support/tls.lua).
function server.process(pipe, pid, port, scheme)
  return setmetatable({
    pipe = pipe,
    pid = pid,
    port = port,
    url = scheme .. "://127.0.0.1:" .. port,
  }, Server)
end

return server
