// SPDX-License-Identifier: MIT
/*
 * Unit test of a VM's network card (src/compute/vm/vmnet.c): the MAC
 * derived from the VM's name (stable, unicast, locally administered), the
 * create request's "net" and its refusals (a bridge this host lacks among
 * them), the port of the ssh forward, QEMU's arguments, and the record's
 * "net" read back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "vmnet.h"

static int parse(const char *text, struct vm_net *n, char *err, size_t errlen)
{
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	int r = vmnet_parse(j, "web", n, err, errlen);

	json_decref(j);
	return r;
}

static void test_mac(void)
{
	uint8_t a[6], b[6], c[6];

	vmnet_mac_from_name("web", a);
	vmnet_mac_from_name("web", b);
	vmnet_mac_from_name("db", c);
	ok(!memcmp(a, b, 6), "the same name, the same MAC");
	ok(memcmp(a, c, 6) != 0, "another name, another MAC");
	ok(a[0] == 0x52 && a[1] == 0x54 && a[2] == 0x00, "52:54:00:...");
	ok((a[0] & 1) == 0 && (a[0] & 2) == 2, "unicast, locally administered");
}

static void test_parse(void)
{
	struct vm_net n;
	char err[256];

	is(parse(NULL, &n, err, sizeof(err)), 0, "no \"net\": user mode");
	ok(n.mode == VM_NET_USER, "user");
	is(parse("{\"mode\": \"none\"}", &n, err, sizeof(err)), 0, "mode none");
	ok(n.mode == VM_NET_NONE, "none");
	is(parse("{\"mode\": \"user\", \"mac\": \"02:00:00:00:00:01\"}", &n, err, sizeof(err)), 0,
	   "a MAC of the caller's");
	ok(n.mac[0] == 2 && n.mac[5] == 1, "taken");
	is(parse("{\"mac\": \"01:00:00:00:00:01\"}", &n, err, sizeof(err)), -EINVAL,
	   "a multicast MAC is refused");
	is(parse("{\"mode\": \"wifi\"}", &n, err, sizeof(err)), -EINVAL, "an unknown mode");
	is(parse("{\"mode\": \"user\", \"colour\": 1}", &n, err, sizeof(err)), -EINVAL,
	   "an unknown field");
	ok(strstr(err, "colour") != NULL, "named: %s", err);
	is(parse("{\"mode\": \"bridge\"}", &n, err, sizeof(err)), -EINVAL, "bridge without a name");
	is(parse("{\"mode\": \"user\", \"bridge\": \"br0\"}", &n, err, sizeof(err)), -EINVAL,
	   "a bridge name without bridge mode");
	is(parse("{\"mode\": \"bridge\", \"bridge\": \"../x\"}", &n, err, sizeof(err)), -EINVAL,
	   "a bridge name that is no interface name");
	is(parse("{\"mode\": \"bridge\", \"bridge\": \"nobr-test0\"}", &n, err, sizeof(err)),
	   -ENODEV, "a bridge this host lacks");
	ok(strstr(err, "no bridge nobr-test0") != NULL, "said so: %s", err);
	is(parse("{\"mode\": \"bridge\", \"bridge\": \"lo\"}", &n, err, sizeof(err)), -ENODEV,
	   "an interface that is not a bridge");
	ok(strstr(err, "not a bridge") != NULL, "said so: %s", err);
}

static void test_args_and_record(void)
{
	struct vm_net n, back;
	char err[256], **v = NULL, *s;
	json_t *j;
	int fd;

	parse(NULL, &n, err, sizeof(err));
	is(vmnet_prepare(&n, "127.0.0.1", &fd, err, sizeof(err)), 0, "a port for the forward");
	ok(n.ssh_port > 0 && fd == -1, "port %u, no descriptor", n.ssh_port);
	is(vmnet_prepare(&n, "::1", &fd, err, sizeof(err)), -EINVAL, "IPv4 only");
	is(vmnet_prepare(&n, "127.0.0.1", &fd, err, sizeof(err)), 0, "again");
	is(vmnet_qemu_args(&n, &v), 0, "QEMU's arguments");
	ok(v && v[0] && !strcmp(v[0], "-netdev") && !strncmp(v[1], "user,id=net0,hostfwd=tcp:127.0.0.1:", 35),
	   "-netdev user with the forward: %s", v ? v[1] : "");
	ok(v && v[2] && !strcmp(v[2], "-device") && strstr(v[3], "virtio-net-pci,netdev=net0,mac=52:54:00:"),
	   "virtio-net-pci with the MAC: %s", v ? v[3] : "");
	ok(v && !v[4], "four arguments");
	for (int i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
	j = vmnet_json(&n);
	s = json_dumps(j, JSON_COMPACT);
	ok(s && strstr(s, "\"ssh\":\"127.0.0.1:"), "the status: %s", s);
	is(vmnet_load(j, &back, err, sizeof(err)), 0, "the record reads back");
	ok(back.mode == VM_NET_USER && back.ssh_port == n.ssh_port &&
	   !strcmp(back.ssh_host, "127.0.0.1") && !memcmp(back.mac, n.mac, 6), "the same card");
	free(s);
	json_decref(j);
	is(vmnet_load(NULL, &back, err, sizeof(err)), 0, "a record without \"net\"");
	ok(back.mode == VM_NET_NONE, "is a VM without a card");
	j = json_pack("{s:s}", "mode", "user");
	is(vmnet_load(j, &back, err, sizeof(err)), -EBADMSG, "a card without its MAC is refused");
	json_decref(j);

	parse("{\"mode\": \"none\"}", &n, err, sizeof(err));
	is(vmnet_qemu_args(&n, &v), 0, "mode none");
	ok(v && !v[0], "no arguments");
	free(v);
	j = vmnet_json(&n);
	ok(json_object_size(j) == 1, "{\"mode\": \"none\"} only");
	json_decref(j);
}

int main(void)
{
	test_mac();
	test_parse();
	test_args_and_record();
	done_testing();
	return tap_exit();
}
