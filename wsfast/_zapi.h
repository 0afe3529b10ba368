/* The deflate library a build of wsfast/_inflate.pyx links, behind one set of names.
 *
 * wsfast._inflate is compiled against zlib (<zlib.h>); wsfast._inflate_ng is the same .pyx
 * compiled with WSFAST_ZLIB_NG defined, against zlib-ng's native API (zng_* symbols, a static
 * libz-ng.a carried inside the extension: see scripts/build_zlibng.sh and setup.py). The
 * native API has its own symbol names, so it never clashes with the zlib that CPython's own
 * zlib module loads into the same process.
 */
#ifndef WSFAST_ZAPI_H
#define WSFAST_ZAPI_H

#ifdef WSFAST_ZLIB_NG
#include "zlib-ng.h"
typedef zng_stream wsz_stream;
#define wsz_inflateInit2 zng_inflateInit2
#define wsz_inflate zng_inflate
#define wsz_inflateReset zng_inflateReset
#define wsz_inflateGetDictionary zng_inflateGetDictionary
#define wsz_inflateSetDictionary zng_inflateSetDictionary
#define wsz_inflateEnd zng_inflateEnd
#define wsz_deflateInit2 zng_deflateInit2
#define wsz_deflate zng_deflate
#define wsz_deflateBound zng_deflateBound
#define wsz_deflateEnd zng_deflateEnd
#define WSZ_BACKEND "zlib-ng"
#define wsz_version() zlibng_version()
#else
#include <zlib.h>
typedef z_stream wsz_stream;
#define wsz_inflateInit2 inflateInit2
#define wsz_inflate inflate
#define wsz_inflateReset inflateReset
#define wsz_inflateGetDictionary inflateGetDictionary
#define wsz_inflateSetDictionary inflateSetDictionary
#define wsz_inflateEnd inflateEnd
#define wsz_deflateInit2 deflateInit2
#define wsz_deflate deflate
#define wsz_deflateBound deflateBound
#define wsz_deflateEnd deflateEnd
#define WSZ_BACKEND "zlib"
#define wsz_version() zlibVersion()
#endif

#endif /* WSFAST_ZAPI_H */
