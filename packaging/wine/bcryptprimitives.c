/* A stand-in for Windows' bcryptprimitives.dll, for running pypm's Windows tests under Wine only.
 *
 * Rust's standard library (1.78 and later) gets its random bytes (HashMap seeds) from
 * `ProcessPrng` in bcryptprimitives.dll, which Windows 10+ has and Wine 8.0 does not: without it
 * every Rust program aborts at its first HashMap. This DLL exports that one function over
 * `RtlGenRandom` (advapi32's SystemFunction036), which Wine does implement. It is built by
 * packaging/wine/run-tests with mingw-w64 and put next to the test executables; it is never
 * shipped (a real Windows has its own). */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
