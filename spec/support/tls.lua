--- A private certificate authority and a TLS server on 127.0.0.1 for the
-- specs, made at test time with the openssl command-line tool.
--
--   local tls = require("tls")
--   local pki = tls.authority()     -- a CA and a server certificate in a temporary directory
--   local srv = tls.serve(pki)      -- openssl s_server on a free port of 127.0.0.1
--   http.get(srv.url .. "/", { cainfo = pki.ca })
--   srv:stop()
--   pki:remove()
--
-- The server certificate names IP address 127.0.0.1 (and no host name).
-- Nothing here is skipped quietly: without openssl, authority() raises.
-- The server ends when the OS thread that started it ends (as the HTTP test
-- server does), so call serve() and stop() from the main thread.
local helpers = require("helpers")
local server = require("server")

local tls = {}

local q = helpers.shell_quote

-- The sanitizer runtime that `make asan` preloads into the specs' Lua is
-- not for the tools run here: LeakSanitizer would fail them at exit.
local NO_PRELOAD = "unset LD_PRELOAD; "

-- Run a shell command; raise with its output if it fails.
local function run(cmd)
  local code, out, err = helpers.command(NO_PRELOAD .. cmd)
  if code ~= 0 then
    error(("command failed (status %s): %s\n%s%s"):format(tostring(code), cmd, out or "", err), 3)
  end
  return out
end

-- One configuration for every openssl call, so that nothing depends on the
-- system's openssl.cnf.
local CONFIG = [[
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
]]

--- The openssl command, or an error saying how to get it.
function tls.openssl()
  local code, out = helpers.command("command -v openssl")
  local path = code == 0 and out:match("^([^\n]+)")
  if not path then
    error("the TLS specs need the openssl command (make deps installs it)", 2)
  end
  return path
end

local Authority = {}
Authority.__index = Authority

--- Remove the directory and everything in it; safe to call twice.
function Authority:remove()
  if self.dir then
    run("rm -rf " .. q(self.dir))
    self.dir = nil
  end
end

--- Make a new CA and a server certificate signed by it, in a new temporary
-- directory. Returns an object with the paths `ca` (the CA certificate),
-- `capath` (a directory holding it under its hash name), `cert` and `key`
-- (the server's), `dir`, and `remove()`.
function tls.authority()
  local openssl = q(tls.openssl())
  local dir = run("mktemp -d"):match("^([^\n]+)")
  local pki = setmetatable({
    dir = dir,
    ca = dir .. "/ca.pem",
    capath = dir .. "/capath",
    cert = dir .. "/server.pem",
    key = dir .. "/server.key",
  }, Authority)
  local ok, err = pcall(function()
    local cnf = dir .. "/openssl.cnf"
    local f = assert(io.open(cnf, "w"))
    f:write(CONFIG)
    f:close()
    local ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
    run(openssl .. " req -x509 -config " .. q(cnf) .. " -extensions ca" .. ec ..
        "-days 2 -subj '/CN=threading test CA' -keyout " .. q(dir .. "/ca.key") ..
        " -out " .. q(pki.ca))
    run(openssl .. " req -new -config " .. q(cnf) .. ec .. "-subj /CN=127.0.0.1 -keyout " ..
        q(pki.key) .. " -out " .. q(dir .. "/server.csr"))
    run(openssl .. " x509 -req -in " .. q(dir .. "/server.csr") .. " -CA " .. q(pki.ca) ..
        " -CAkey " .. q(dir .. "/ca.key") .. " -set_serial 2 -days 2 -extfile " .. q(cnf) ..
        " -extensions server -out " .. q(pki.cert))
    -- OpenSSL finds a CA in a directory by the hash of its subject
    run("mkdir " .. q(pki.capath) .. " && cp " .. q(pki.ca) .. " " .. q(pki.capath) ..
        " && " .. openssl .. " rehash " .. q(pki.capath))
  end)
  if not ok then
    pki:remove()
    error(err, 2)
  end
  return pki
end

--- Start `openssl s_server -www` with the server certificate of `pki` on a
-- port of 127.0.0.1 that the system chooses. Returns once the server
-- accepts connections (it prints the port then), with `url`
-- ("https://127.0.0.1:PORT"), `port`, `pid` and `stop()`. Any GET gets a
-- 200 status page.
function tls.serve(pki)
  local openssl = q(tls.openssl())
  -- the shell prints its pid, then becomes setpriv, which becomes openssl:
  -- one pid, and a TERM for openssl when its parent (this thread) ends
  local pipe = assert(io.popen("echo $$; " .. NO_PRELOAD ..
    "exec setpriv --pdeathsig TERM -- " .. openssl ..
    " s_server -accept 127.0.0.1:0 -www -cert " .. q(pki.cert) .. " -key " .. q(pki.key) ..
    " </dev/null 2>>" .. q(pki.dir .. "/s_server.log"), "r"))
  local pid = tonumber(pipe:read("*l"))
  local port
  for line in pipe:lines() do
    port = tonumber(line:match("^ACCEPT 127%.0%.0%.1:(%d+)"))
    if port then
      break
    end
  end
  if not pid or not port then
    pipe:close()
    error("openssl s_server did not start (see " .. pki.dir .. "/s_server.log)", 2)
  end
  return server.process(pipe, pid, port, "https")
end

return tls
