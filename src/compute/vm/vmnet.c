// SPDX-License-Identifier: MIT
/*
 * A VM's network card: the create request's "net", the port of the ssh
 * forward (user mode) or the tap on a bridge (bridge mode), QEMU's
 * arguments, and the card in the VM's status and record.
 *
 * Bridge mode: the agent (which runs with CAP_NET_ADMIN anyway) opens
 * /dev/net/tun with TUNSETIFF for a tap named dgtapN, brings it up, adds
 * it to the bridge (SIOCBRADDIF) and hands the descriptor to QEMU
 * (-netdev tap,fd=3). QEMU needs no privilege and no qemu-bridge-helper
 * configuration; the tap goes away with QEMU's last descriptor.
 */
#include "vmnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonhttp.h"
#include "macro.h"

#define DEFAULT_FWD_ADDR "127.0.0.1"

static const char *const mode_names[] = {
	[VM_NET_NONE] = "none", [VM_NET_USER] = "user", [VM_NET_BRIDGE] = "bridge",
};

static int mode_parse(const char *s, enum vm_net_mode *ret)
{
	for (unsigned i = 0; s && i < ARRAY_SIZE(mode_names); i++)
		if (!strcmp(s, mode_names[i])) {
			*ret = (enum vm_net_mode)i;
			return 0;
		}
	return -EINVAL;
}

void vmnet_mac_from_name(const char *name, uint8_t mac[6])
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	mac[0] = 0x52;              /* 0x02: locally administered, unicast */
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static void mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		 mac[4], mac[5]);
}

/* "xx:xx:xx:xx:xx:xx", unicast: 0 or -EINVAL. */
static int mac_parse(const char *s, uint8_t mac[6])
{
	unsigned b[6];
	char end;

	if (!s || strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &end) != 6 || (b[0] & 1))
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

static bool ifname_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= VM_NET_IFNAMSIZ || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* 0 if bridge is a bridge of this host, else -ENODEV with err saying so. */
static int bridge_check(const char *bridge, char *err, size_t errlen)
{
	char path[80];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", bridge);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	snprintf(path, sizeof(path), "/sys/class/net/%s", bridge);
	snprintf(err, errlen, access(path, F_OK) == 0
		 ? "network interface %s of this compute node is not a bridge"
		 : "there is no bridge %s on this compute node (create it, e.g. `ip link add %s type bridge`)",
		 bridge, bridge);
	return -ENODEV;
}

int vmnet_parse(json_t *j, const char *name, struct vm_net *ret, char *err, size_t errlen)
{
	static const char *const keys[] = { "mode", "bridge", "mac", NULL };
	struct vm_net n = { .mode = VM_NET_USER };
	const char *bad = NULL, *br, *mac;

	vmnet_mac_from_name(name, n.mac);
	if (!j) {
		*ret = n;
		return 0;
	}
	if (!json_is_object(j) || json_check_keys(j, keys, &bad) < 0) {
		snprintf(err, errlen, bad ? "\"net\": unknown field \"%s\""
				       : "\"net\" must be an object {\"mode\", \"bridge\", \"mac\"}",
			 bad);
		return -EINVAL;
	}
	if (json_object_get(j, "mode") &&
	    mode_parse(json_string_value(json_object_get(j, "mode")), &n.mode) < 0) {
		snprintf(err, errlen, "\"net\".\"mode\" must be \"user\", \"bridge\" or \"none\"");
		return -EINVAL;
	}
	br = json_string_value(json_object_get(j, "bridge"));
	if ((n.mode == VM_NET_BRIDGE) != (json_object_get(j, "bridge") != NULL) ||
	    (n.mode == VM_NET_BRIDGE && !ifname_valid(br))) {
		snprintf(err, errlen, "\"net\".\"bridge\" (an interface name of up to %d characters) "
			 "goes with mode \"bridge\" and only with it", VM_NET_IFNAMSIZ - 1);
		return -EINVAL;
	}
	mac = json_string_value(json_object_get(j, "mac"));
	if (json_object_get(j, "mac") && mac_parse(mac, n.mac) < 0) {
		snprintf(err, errlen, "\"net\".\"mac\" must be a unicast address xx:xx:xx:xx:xx:xx");
		return -EINVAL;
	}
	if (n.mode == VM_NET_BRIDGE) {
		snprintf(n.bridge, sizeof(n.bridge), "%s", br);
		if (bridge_check(n.bridge, err, errlen) < 0)
			return -ENODEV;
	}
	*ret = n;
	return 0;
}

/* A port of addr that is free now: QEMU binds it a moment later (with SO_REUSEADDR). */
static int free_port(const char *addr, unsigned *ret, char *err, size_t errlen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	_cleanup_close_ int fd = -1;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		snprintf(err, errlen, "the ssh forward address %s is not an IPv4 address", addr);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		int r = -errno;

		snprintf(err, errlen, "no port for the ssh forward on %s: %s", addr, strerror(-r));
		return r;
	}
	*ret = ntohs(sin.sin_port);
	return 0;
}

/* ioctl on a socket: 0 or -errno. */
static int if_ioctl(int s, unsigned long req, struct ifreq *ifr)
{
	return ioctl(s, req, ifr) < 0 ? -errno : 0;
}

/* A tap, up and on the bridge: its descriptor, or -errno with err saying why. */
static int tap_open(const char *bridge, char *ret_name, char *err, size_t errlen)
{
	_cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	_cleanup_close_ int s = -1;
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	const char *step = "/dev/net/tun";
	int r;

	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "dgtap%%d");
	step = "TUNSETIFF";
	r = ioctl(fd, TUNSETIFF, &ifr) < 0 ? -errno : 0;
	if (r < 0)
		goto fail;
	snprintf(ret_name, VM_NET_IFNAMSIZ, "%s", ifr.ifr_name);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	step = "bringing the tap up";
	r = s < 0 ? -errno : if_ioctl(s, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	if (r == 0)
		r = if_ioctl(s, SIOCSIFFLAGS, &ifr);
	if (r < 0)
		goto fail;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
	ifr.ifr_ifindex = (int)if_nametoindex(ret_name);
	step = "adding the tap to the bridge (SIOCBRADDIF)";
	r = if_ioctl(s, SIOCBRADDIF, &ifr);
	if (r < 0)
		goto fail;
	return TAKE_FD(fd);
fail:
	snprintf(err, errlen, "a tap on bridge %s: %s: %s%s", bridge, step, strerror(-r),
		 r == -EPERM ? " (the agent needs CAP_NET_ADMIN for bridge mode)" : "");
	return r;
}

int vmnet_prepare(struct vm_net *n, const char *fwd_addr, int *ret_fd, char *err,
		  size_t errlen)
{
	int r = 0;

	*ret_fd = -1;
	if (n->mode == VM_NET_USER) {
		snprintf(n->ssh_host, sizeof(n->ssh_host), "%s", fwd_addr ? fwd_addr : DEFAULT_FWD_ADDR);
		r = free_port(n->ssh_host, &n->ssh_port, err, errlen);
	} else if (n->mode == VM_NET_BRIDGE) {
		r = bridge_check(n->bridge, err, errlen);
		if (r == 0)
			r = tap_open(n->bridge, n->tap, err, errlen);
		if (r >= 0)
			*ret_fd = r;
	}
	return r < 0 ? r : 0;
}

int vmnet_qemu_args(const struct vm_net *n, char ***ret)
{
	char mac[18], **v = calloc(5, sizeof(*v));
	int k = 0;

	if (!v)
		return -ENOMEM;
	mac_format(n->mac, mac);
	/* romfile= : no PXE option ROM (one file less for QEMU to find, a faster boot) */
	if (n->mode != VM_NET_NONE &&
	    (!(v[k++] = strdup("-netdev")) ||
	     (n->mode == VM_NET_USER
		      ? asprintf(&v[k++], "user,id=net0,hostfwd=tcp:%s:%u-:22", n->ssh_host,
				 n->ssh_port)
		      : asprintf(&v[k++], "tap,id=net0,fd=%d", VMNET_QEMU_TAP_FD)) < 0 ||
	     !(v[k++] = strdup("-device")) ||
	     asprintf(&v[k++], "virtio-net-pci,netdev=net0,mac=%s,romfile=", mac) < 0)) {
		v[k - 1] = NULL;   /* asprintf leaves it undefined on failure */
		for (int i = 0; i < k; i++)
			free(v[i]);
		free(v);
		return -ENOMEM;
	}
	*ret = v;
	return 0;
}

json_t *vmnet_json(const struct vm_net *n)
{
	json_t *j = json_pack("{s:s}", "mode", mode_names[n->mode]);
	char mac[18];

	if (!j || n->mode == VM_NET_NONE)
		return j;
	mac_format(n->mac, mac);
	json_object_set_new(j, "mac", json_string(mac));
	if (n->mode == VM_NET_USER && n->ssh_port)
		json_object_set_new(j, "ssh", json_sprintf("%s:%u", n->ssh_host, n->ssh_port));
	if (n->mode == VM_NET_BRIDGE) {
		json_object_set_new(j, "bridge", json_string(n->bridge));
		if (n->tap[0])
			json_object_set_new(j, "tap", json_string(n->tap));
	}
	return j;
}

int vmnet_load(json_t *j, struct vm_net *ret, char *err, size_t errlen)
{
	struct vm_net n = { .mode = VM_NET_NONE };
	const char *ssh = json_string_value(json_object_get(j, "ssh"));
	const char *br = json_string_value(json_object_get(j, "bridge"));
	const char *tap = json_string_value(json_object_get(j, "tap"));
	const char *colon = ssh ? strrchr(ssh, ':') : NULL;

	if (!j) {
		*ret = n;
		return 0;
	}
	if (!json_is_object(j) || mode_parse(json_string_value(json_object_get(j, "mode")), &n.mode) < 0 ||
	    (n.mode != VM_NET_NONE && mac_parse(json_string_value(json_object_get(j, "mac")), n.mac) < 0) ||
	    (ssh && (!colon || (size_t)(colon - ssh) >= sizeof(n.ssh_host) ||
		     sscanf(colon + 1, "%u", &n.ssh_port) != 1 || n.ssh_port > 65535)) ||
	    (n.mode == VM_NET_BRIDGE && (!ifname_valid(br) || (tap && !ifname_valid(tap))))) {
		snprintf(err, errlen, "bad \"net\"");
		return -EBADMSG;
	}
	if (ssh)
		snprintf(n.ssh_host, sizeof(n.ssh_host), "%.*s", (int)(colon - ssh), ssh);
	if (br)
		snprintf(n.bridge, sizeof(n.bridge), "%s", br);
	if (tap)
		snprintf(n.tap, sizeof(n.tap), "%s", tap);
	*ret = n;
	return 0;
}
