// SPDX-License-Identifier: MIT
/*
 * The service manager's notification protocol, without libsystemd: a
 * datagram on an AF_UNIX socket. See notify.h.
 *
 * $NOTIFY_SOCKET is an absolute path, or an abstract socket name written
 * with a leading '@' (which becomes the NUL of the abstract namespace).
 * Anything else, or a name too long for sun_path, is -EINVAL. The socket is
 * made per message: notices are rare (start, stop), and a daemon then holds
 * no descriptor its children could inherit.
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

int notify_send(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	size_t len;
	socklen_t salen;

	if (!name || !name[0])
		return 0;
	if (!state)
		return -EINVAL;
	len = strlen(name);
	if ((name[0] != '/' && name[0] != '@') || len > sizeof(sa.sun_path) ||
	    (name[0] == '/' && len == sizeof(sa.sun_path)))
		return -EINVAL;
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	/* An abstract name is exactly its length; a path carries its NUL. */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		return -errno;
	return 0;
}

static void notify_log(const char *state)
{
	int r = notify_send(state);

	if (r < 0)
		log_debug("cannot notify the service manager (%s): %s", state, strerror(-r));
}

void notify_ready(void)
{
	notify_log("READY=1");
}

void notify_stopping(void)
{
	notify_log("STOPPING=1");
}
