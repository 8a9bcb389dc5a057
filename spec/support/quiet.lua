-- Run by busted before the specs (.busted's helper): many specs make threads
-- fail on purpose and read the failure from join, so the suite replaces the
-- default excepthook, which would print each one. The default report itself
-- is pinned by specs that run scripts in a fresh interpreter.
require("threading").excepthook = function() end
