"""Fetching public datasets and checkpoints into a local data directory.

Nothing in the benchmark itself downloads anything: experiments read local files
only. This package is what a user with internet access runs once, beforehand
(``bench datasets download``, ``bench weights download``), so that the files land
in the layout the dataset loaders and extractors expect.

- ``registry``: the table of what can be fetched (URLs, known sizes/checksums,
  how to lay it out) and of what must be fetched by hand (``bench datasets info``);
- ``fetch``: one file over HTTP(S)/FTP into a ``.part`` file, resumed with range
  requests, verified;
- ``unpack``: archive -> layout rules;
- ``manifest``: what was installed, from where, when, with which checksum;
- ``install``: the steps above in order, atomically, and idempotently.
"""
