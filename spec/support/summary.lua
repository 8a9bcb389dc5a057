-- busted output: the usual terminal report, then one closing line
-- "N passed, N failed" that scripts can read.
return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local subscribe = handler.subscribe
  handler.subscribe = function(self, opts)
    subscribe(self, opts)
    -- subscribed after the terminal report, so printed after it
    busted.subscribe({ "suite", "end" }, function()
      io.write(("%d passed, %d failed\n"):format(handler.successesCount,
        handler.failuresCount + handler.errorsCount))
      io.flush()
      return nil, true
    end)
  end
  return handler
end
