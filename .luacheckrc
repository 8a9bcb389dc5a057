std = "max+busted"
max_line_length = 110
exclude_files = { "build/", "lua_modules/", ".luarocks/" }
files["spec/support/summary.lua"] = { std = "max" }
