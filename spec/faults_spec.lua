local threading = require("threading")
local helpers = require("helpers")

-- A value whose collection raises an error (a userdata on 5.1 and LuaJIT,
-- whose tables have no __gc).
local function failing_finalizer_source()
  return helpers.with_gc_source .. [[
    local function doomed()
      return with_gc(function() error("error in __gc") end)
    end
  ]]
end

describe("faults", function()
  it("returns a table error whose __tostring fails as the table", function()
    local t = threading.start(function()
      error(setmetatable({ code = 1 }, { __tostring = function() error("tostring fails") end }))
    end)
    local ok, err = t:join(10)
    assert.is_false(ok)
    assert.equal(1, err.code)
  end)

  it("reports a failure even when its error's __tostring fails", function()
    local code, _, err = helpers.run_script([[
      local threading = require("threading")
      threading.Thread{ name = "odd", target = function()
        error(setmetatable({}, { __tostring = function() error("tostring fails") end }))
      end }:start()
    ]])
    assert.equal(0, code)
    assert.truthy(err:find("Exception in thread odd:\n(error object is a table value that cannot be shown)",
                           1, true), err)
  end)

  it("finishes a thread whose state closes with an erroring __gc", function()
    local chunk = failing_finalizer_source() .. [[
      local threading = require("threading")
      local t = threading.start(function()
        ]] .. failing_finalizer_source() .. [[
        keep = doomed()
        return "returned"
      end)
      print(select(2, t:join(10)))
    ]]
    local code, out = helpers.run_script(chunk)
    assert.equal(0, code)
    assert.equal("returned\n", out)
  end)

  it("survives os.exit while threads sleep and spin", function()
    local code, out = helpers.run_script([[
      local threading = require("threading")
      local started = threading.Lock()
      started:acquire()
      threading.start(function() require("threading").sleep(60) end)
      threading.start(function(s) s:release() local n = 0 while true do n = n + 1 end end, started)
      started:acquire()
      print("exiting")
      os.exit(3)
    ]])
    assert.equal(3, code)
    assert.equal("exiting\n", out)
  end)

  it("carries on after a thread runs out of memory", function()
    local t = threading.Thread{ memory_limit = 2 * 1024 * 1024, target = function()
      local s = "x"
      while true do s = s .. s end
    end }:start()
    local ok, err = t:join(30)
    assert.is_false(ok)
    assert.truthy(err:find("not enough memory", 1, true))
    assert.same({ true, 2 }, { threading.start(function() return 2 end):join(10) })
  end)

  it("runs threads from two independent states of one host program", function()
    local host = assert(os.getenv("THREADING_EMBED"), "THREADING_EMBED is not set")
    local p = assert(io.popen(host .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    assert.equal("first: started Thread-1\nsecond: started Thread-2\nfirst: closed\n" ..
                 "second: released\nsecond: closed\n", out)
  end)
end)
