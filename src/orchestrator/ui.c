// SPDX-License-Identifier: MIT
/*
 * The web view (docs/webview.md): GET /ui/ and /ui/FILE answer with the
 * files of src/orchestrator/ui/, embedded at build time (ui_assets.h).
 * They carry no data of the cluster, so they are served without a token;
 * the page asks for the API token and sends it with every call to /v1.
 * Each answer has an ETag (If-None-Match: 304), a Content-Security-Policy
 * that lets the page load its own files only, and nosniff. /ui redirects
 * to /ui/.
 */
#include "ui.h"

#include <stdlib.h>
#include <string.h>

#include "ui_assets.h"

static const char *const redirect_headers[] = { "Location", "/ui/", NULL };

bool ui_path(const char *path)
{
	return strcmp(path, "/ui") == 0 || strncmp(path, "/ui/", 4) == 0;
}

static const struct ui_asset *ui_find(const char *name)
{
	if (!*name)
		name = "index.html";
	for (size_t i = 0; i < ui_assets_n; i++)
		if (strcmp(ui_assets[i].name, name) == 0)
			return &ui_assets[i];
	return NULL;
}

enum orch_route ui_serve(const struct http_req *req, struct http_resp *resp)
{
	const struct ui_asset *a;
	const char *inm;
	void *copy;

	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		http_resp_error(resp, 405, "method_not_allowed", "use GET on this path");
		return RT_UI;
	}
	if (strcmp(req->path, "/ui") == 0) {
		http_resp_text(resp, 308, "text/plain; charset=utf-8", strdup("/ui/\n"));
		resp->headers = redirect_headers;
		return RT_UI;
	}
	a = ui_find(req->path + 4);
	if (!a) {
		http_resp_error(resp, 404, "not_found", "no such file %s", req->path);
		return RT_UI;
	}
	resp->headers = a->headers;
	inm = http_req_header(req, "If-None-Match");
	if (inm && strstr(inm, a->etag)) {
		http_resp_text(resp, 304, a->content_type, NULL);
		return RT_UI;
	}
	copy = malloc(a->len);
	if (!copy) {
		resp->headers = NULL;
		http_resp_error(resp, 500, "internal", "out of memory");
		return RT_UI;
	}
	memcpy(copy, a->data, a->len);
	http_resp_bytes(resp, 200, a->content_type, copy, a->len);
	return RT_UI;
}
