/*
** version.h: the module's version, in the one place it lives.
**
** threading.core's _VERSION is this string; the release rockspec's name and
** version, its source tag and CHANGELOG.md's latest release heading must
** agree with it, and `make lint` fails when one of them does not.
*/
#ifndef THREADING_VERSION_H
#define THREADING_VERSION_H

#define THREADING_VERSION "0.1.0"

#endif
