/* SPDX-License-Identifier: MIT */
/* The web view's files: GET /ui/ and /ui/FILE (ui.c, docs/webview.md). */
#ifndef DISAGG_ORCH_UI_H
#define DISAGG_ORCH_UI_H

#include "orch.h"

/* Is path the web view's (/ui, /ui/...)? Served without a token. */
bool ui_path(const char *path);
/* GET or HEAD /ui/FILE ("" is index.html), /ui redirects to /ui/. */
enum orch_route ui_serve(const struct http_req *req, struct http_resp *resp);

#endif /* DISAGG_ORCH_UI_H */
