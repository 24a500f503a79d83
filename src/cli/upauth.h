/* SPDX-License-Identifier: MIT */
/*
 * The keys and API credentials `disagg up` makes in its data directory
 * (docs/cli.md, docs/api.md#authentication): the cluster key, the grant
 * key pair, a people token (DIR/api.tokens), the node secret
 * (DIR/node.secret) and each node's credential (DIR/node-ID.cred).
 * Errors are printed.
 */
#ifndef DISAGG_CLI_UPAUTH_H
#define DISAGG_CLI_UPAUTH_H

#include <stdbool.h>
#include <stdint.h>

struct upauth {
	char *tokens, *secret;    /* DIR/api.tokens, DIR/node.secret */
	char *token;              /* the token in it */
};

/* The paths in dir: 0 or -ENOMEM. */
int upauth_init(struct upauth *a, const char *dir);
void upauth_clear(struct upauth *a);
/* New keys: the cluster key, the grant key pair, the node secret and a token. */
int upauth_make_keys(struct upauth *a, const char *key, const char *gkey, const char *gpub);
/* DIR/node-ID.cred for node id (replacing an old one): its path, or NULL. */
char *upauth_node_cred(const struct upauth *a, const char *dir, int64_t id);
/*
 * `up --fabric-plaintext`: a daemon's "--tls-ca X --tls-cert Y --tls-key Z"
 * becomes "--fabric-plaintext" in argv (in place; its NULL end moves up).
 * Nothing happens without plaintext.
 */
void upauth_fabric_args(bool plaintext, char **argv);

#endif /* DISAGG_CLI_UPAUTH_H */
