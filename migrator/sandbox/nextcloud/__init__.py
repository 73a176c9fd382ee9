"""A Nextcloud stand-in: the endpoints a files migration uses (WebDAV files, chunked upload v2,
OCS capabilities, user, shares, the groupfolders API), written to Nextcloud's documented
behaviour, on local disk, for tests and demos where a real Nextcloud cannot be installed."""

from migrator.sandbox.nextcloud.server import NextcloudServer

__all__ = ["NextcloudServer"]
