/* Whole-file reads with a size limit and atomic whole-file writes, for
 * certificates, keys and CRLs. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls/tls_int.h"

static int fileio_open_error(const char *path, int err)
{
	if (err == ENOENT || err == ENOTDIR)
		return cmi_error(CMICRO_ENOENT, "%s: file not found; check the path", path);
	if (err == EACCES || err == EPERM)
		return cmi_error(CMICRO_EIO,
		                 "%s: permission denied; make the file readable by "
		                 "this process",
		                 path);
	return cmi_error(CMICRO_EIO, "%s: cannot open: %s", path, CMI_ERRNO_TEXT(err));
}

static int fileio_too_big(const char *path, size_t max)
{
	return cmi_error(CMICRO_ELIMIT,
	                 "%s is larger than the %zu-byte limit; check that the "
	                 "path names the intended file",
	                 path, max);
}

/* Grows *buf to hold cap bytes plus a NUL. */
static int fileio_grow(char **buf, size_t cap, const char *path)
{
	char *grown = realloc(*buf, cap + 1);

	if (grown == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory reading %s", path);
	*buf = grown;
	return 0;
}

/* Reads until end of file, stopping one byte past max so that an oversized
 * file is detected even when its size was not known in advance (a pipe, or a
 * file growing while it is read). */
static int fileio_read_fd(int fd, const char *path, size_t max, size_t hint, char **data,
                          size_t *len)
{
	size_t cap = hint < max ? hint + 1 : max + 1;
	size_t got = 0;
	char *buf = NULL;
	int rc = fileio_grow(&buf, cap, path);

	while (rc == 0) {
		ssize_t n;

		if (got == cap && cap > max) {
			rc = fileio_too_big(path, max);
			break;
		}
		if (got == cap) {
			cap = cap > max / 2 ? max + 1 : cap * 2;
			rc = fileio_grow(&buf, cap, path);
			continue;
		}
		n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = cmi_error(CMICRO_EIO, "%s: read failed: %s", path,
			               CMI_ERRNO_TEXT(errno));
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (rc != 0) {
		free(buf);
		return rc;
	}

	buf[got] = '\0';
	*data = buf;
	*len = got;
	return 0;
}

int cmi_read_file(const char *path, size_t max, char **data, size_t *len)
{
	struct stat st;
	size_t hint = 4096;
	int fd;
	int rc;

	if (path == NULL || data == NULL || len == NULL)
		return cmi_error(CMICRO_EINVAL, "cmi_read_file: path and outputs must not be NULL");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fileio_open_error(path, errno);

	if (fstat(fd, &st) != 0) {
		rc = cmi_error(CMICRO_EIO, "%s: cannot stat: %s", path, CMI_ERRNO_TEXT(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = cmi_error(CMICRO_EINVAL, "%s is a directory; give a file", path);
		goto out;
	}
	if (S_ISREG(st.st_mode)) {
		if ((unsigned long long)st.st_size > max) {
			rc = fileio_too_big(path, max);
			goto out;
		}
		hint = (size_t)st.st_size;
	}

	rc = fileio_read_fd(fd, path, max, hint, data, len);
out:
	close(fd);
	return rc;
}

/* Sets the mode of the temporary file, writes data and flushes it to disk. */
static int fileio_fill(int fd, const char *path, const void *data, size_t len, unsigned mode)
{
	const char *p = data;

	if (fchmod(fd, (mode_t)mode) != 0)
		return cmi_error(CMICRO_EIO, "%s: cannot set mode %03o: %s", path, mode,
		                 CMI_ERRNO_TEXT(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cmi_error(CMICRO_EIO,
			                 "%s: write failed: %s; check the free space "
			                 "and permissions of its directory",
			                 path, CMI_ERRNO_TEXT(errno));
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0)
		return cmi_error(CMICRO_EIO, "%s: fsync failed: %s", path, CMI_ERRNO_TEXT(errno));
	return 0;
}

/* The data goes to a temporary file in the target's directory first, so a
 * crash or a full disk never leaves a half-written certificate or key under
 * the final name. rename(2) then replaces the target in one step. */
int cmi_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	bool created = false;
	char *tmp = NULL;
	int fd = -1;
	int rc;

	if (path == NULL || (data == NULL && len > 0))
		return cmi_error(CMICRO_EINVAL, "cmi_write_file: path and data must not be NULL");
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return cmi_error(CMICRO_ENOMEM, "out of memory writing %s", path);

	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = cmi_error(CMICRO_EIO,
		               "%s: cannot create a file in its directory: %s; check "
		               "that the directory exists and is writable",
		               path, CMI_ERRNO_TEXT(errno));
		goto out;
	}
	created = true;
	rc = fileio_fill(fd, path, data, len, mode);
	if (rc != 0)
		goto out;
	if (close(fd) != 0) {
		fd = -1;
		rc = cmi_error(CMICRO_EIO, "%s: close failed: %s", path, CMI_ERRNO_TEXT(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		rc = cmi_error(CMICRO_EIO, "%s: cannot replace the file: %s", path,
		               CMI_ERRNO_TEXT(errno));
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0 && created)
		unlink(tmp);
	free(tmp);
	return rc;
}
