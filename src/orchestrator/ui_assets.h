/* SPDX-License-Identifier: MIT */
/*
 * The web view's files (src/orchestrator/ui/), embedded in the
 * orchestrator at build time: scripts/embed-ui.py writes ui_assets.c with
 * each file's bytes, content type, ETag and the headers it is served with.
 */
#ifndef DISAGG_ORCH_UI_ASSETS_H
#define DISAGG_ORCH_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
	const char *name;                /* "index.html", "app.js", ... */
	const char *content_type;
	const unsigned char *data;
	size_t len;
	const char *etag;                /* "\"HEX\"" */
	const char *const *headers;      /* name, value, ..., NULL (struct http_resp) */
};

extern const struct ui_asset ui_assets[];
extern const size_t ui_assets_n;

#endif /* DISAGG_ORCH_UI_ASSETS_H */
