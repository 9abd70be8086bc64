# Install for plugin authors and admins: binaries, the ABI header and a pkg-config file.
#   make install PREFIX=/usr/local            (release build)
#   make install PREFIX=/tmp/x CONFIG=debug   (what the tests use: no second, slower build)
PREFIX ?= /usr/local
CONFIG ?= release
DESTDIR ?=

BIN := .build/$(CONFIG)

.PHONY: build install uninstall test

build:
	swift build -c $(CONFIG) --product mcp-plugin-host

install: build
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/include" "$(DESTDIR)$(PREFIX)/lib/pkgconfig"
	install -m 0755 "$(BIN)/mcp-plugin-host" "$(DESTDIR)$(PREFIX)/bin/mcp-plugin-host"
	install -m 0644 Sources/PluginABI/include/mcp_plugin.h "$(DESTDIR)$(PREFIX)/include/mcp_plugin.h"
	install -m 0644 Sources/PluginABI/include/mcp_plugin.hpp "$(DESTDIR)$(PREFIX)/include/mcp_plugin.hpp"
	sed -e 's|@PREFIX@|$(PREFIX)|g' packaging/mcp-plugin.pc.in > "$(DESTDIR)$(PREFIX)/lib/pkgconfig/mcp-plugin.pc"
	chmod 0644 "$(DESTDIR)$(PREFIX)/lib/pkgconfig/mcp-plugin.pc"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/bin/mcp-plugin-host" "$(DESTDIR)$(PREFIX)/include/mcp_plugin.h" \
	      "$(DESTDIR)$(PREFIX)/include/mcp_plugin.hpp" \
	      "$(DESTDIR)$(PREFIX)/lib/pkgconfig/mcp-plugin.pc"

test:
	scripts/test.sh
