local http_module = require("threading.http")
local async = require("threading.async")
local helpers = require("helpers")
local tls = require("tls")

-- A CA made for this run, and openssl s_server on 127.0.0.1 with a
-- certificate it signed for IP address 127.0.0.1. Without openssl the setup
-- fails, and with it every spec here: nothing is skipped.
describe("threading.http over TLS with a private certificate authority", function()
  local pki, srv

  setup(function()
    pki = tls.authority()
    srv = tls.serve(pki)
  end)

  teardown(function()
    if srv then
      srv:stop()
    end
    if pki then
      pki:remove()
    end
  end)

  -- `http` holds get and request: the blocking calls, or the same calls
  -- inside a threading.async task (the I/O thread's path, src/http_io.c)
  local function behaves(http)
    it("refuses the server's certificate with the default verification", function()
      local r, err, kind = http.get(srv.url .. "/")
      assert.is_nil(r)
      assert.equal("string", type(err))
      assert.equal("tls", kind)
    end)

    it("trusts the server with the private CA given as cainfo", function()
      local r = assert(http.get(srv.url .. "/", { cainfo = pki.ca }))
      assert.equal(200, r.status)
    end)

    it("trusts the server with a directory holding the private CA given as capath", function()
      local r = assert(http.get(srv.url .. "/", { capath = pki.capath }))
      assert.equal(200, r.status)
    end)

    it("accepts the server's certificate when verify is false", function()
      local r = assert(http.get(srv.url .. "/", { verify = false }))
      assert.equal(200, r.status)
    end)

    it("takes cainfo in request as in get", function()
      local r = assert(http.request({ url = srv.url .. "/", cainfo = pki.ca }))
      assert.equal(200, r.status)
    end)

    it("still checks the host name against a certificate the CA vouches for", function()
      -- the certificate names 127.0.0.1 only
      local r, _, kind = http.get("https://localhost:" .. srv.port .. "/", { cainfo = pki.ca })
      assert.is_nil(r)
      assert.equal("tls", kind)
    end)

    it("returns a tls failure for a cainfo file that does not exist", function()
      local r, err, kind = http.get(srv.url .. "/", { cainfo = pki.dir .. "/missing.pem" })
      assert.is_nil(r)
      assert.equal("string", type(err))
      assert.equal("tls", kind)
    end)

    it("refuses the server again once cainfo is no longer given", function()
      assert(http.get(srv.url .. "/", { cainfo = pki.ca }))
      local r, _, kind = http.get(srv.url .. "/")
      assert.is_nil(r)
      assert.equal("tls", kind)
    end)
  end

  describe("in the calling thread", function()
    behaves(http_module)
  end)

  describe("inside a threading.async task", function()
    behaves(helpers.in_task_http(async, http_module))
  end)
end)
