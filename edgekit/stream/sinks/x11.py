"""The little of libX11 (through ctypes) the window sink needs: find this process's windows and
send them an event. No X binding is a dependency: without libX11, send_map_notify does nothing."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

MAP_NOTIFY, KEY_PRESS, KEY_RELEASE, CLIENT_MESSAGE = 19, 2, 3, 33
KEY_PRESS_MASK, KEY_RELEASE_MASK, STRUCTURE_NOTIFY_MASK = 1, 2, 1 << 17
XA_CARDINAL = 6


class MapEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("event", ctypes.c_ulong), ("window", ctypes.c_ulong),
                ("override_redirect", ctypes.c_int)]


class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5)]


class KeyEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("root", ctypes.c_ulong),
                ("subwindow", ctypes.c_ulong), ("time", ctypes.c_ulong), ("x", ctypes.c_int), ("y", ctypes.c_int),
                ("x_root", ctypes.c_int), ("y_root", ctypes.c_int), ("state", ctypes.c_uint),
                ("keycode", ctypes.c_uint), ("same_screen", ctypes.c_int)]


class XEvent(ctypes.Union):
    _fields_ = [("xmap", MapEvent), ("xclient", ClientMessage), ("xkey", KeyEvent), ("pad", ctypes.c_long * 24)]


# An X protocol error (say, a window destroyed while we walk the tree) must not reach libX11's
# default handler, which exits the process: this one ignores it. Module-level: ctypes must keep
# the callback alive for as long as libX11 may call it.
_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(lambda display, error: 0)


@functools.lru_cache(maxsize=1)
def library():
    """libX11 with the signatures used here, or None when it is not installed."""
    path = ctypes.util.find_library("X11")
    try:
        x11 = ctypes.CDLL(path) if path else None
    except OSError:
        x11 = None
    if x11 is None:
        return None
    ptr, ulong, uint = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_uint
    x11.XOpenDisplay.restype = ptr
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ulong
    x11.XDefaultRootWindow.argtypes = [ptr]
    x11.XQueryTree.argtypes = [ptr, ulong, ctypes.POINTER(ulong), ctypes.POINTER(ulong),
                               ctypes.POINTER(ctypes.POINTER(ulong)), ctypes.POINTER(uint)]
    x11.XGetWindowProperty.argtypes = [ptr, ulong, ulong, ctypes.c_long, ctypes.c_long, ctypes.c_int, ulong,
                                       ctypes.POINTER(ulong), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ulong),
                                       ctypes.POINTER(ulong), ctypes.POINTER(ctypes.POINTER(ulong))]
    x11.XInternAtom.restype = ulong
    x11.XInternAtom.argtypes = [ptr, ctypes.c_char_p, ctypes.c_int]
    x11.XStringToKeysym.restype = ulong
    x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
    x11.XKeysymToKeycode.restype = ctypes.c_ubyte
    x11.XKeysymToKeycode.argtypes = [ptr, ulong]
    x11.XSendEvent.argtypes = [ptr, ulong, ctypes.c_int, ctypes.c_long, ctypes.POINTER(XEvent)]
    x11.XSetErrorHandler.restype = ptr
    x11.XSetErrorHandler.argtypes = [ptr]
    x11.XSync.argtypes = [ptr, ctypes.c_int]
    x11.XFree.argtypes = [ptr]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ptr]
    return x11


@contextmanager
def connect(display: str | None = None) -> Iterator[tuple]:
    """(libX11 or None, a connection to DISPLAY (default $DISPLAY) or None), with X errors ignored
    meanwhile (the previous handler comes back afterwards)."""
    x11 = library()
    connection = x11.XOpenDisplay(display.encode() if display else None) if x11 else None
    if not connection:
        yield x11, None
        return
    previous = x11.XSetErrorHandler(ctypes.cast(_ERROR_HANDLER, ctypes.c_void_p))
    try:
        yield x11, connection
    finally:
        x11.XSync(connection, 0)   # errors of our requests arrive while our handler is still set
        x11.XSetErrorHandler(previous)
        x11.XCloseDisplay(connection)


def windows_of(x11, connection, pid: int) -> list[int]:
    """Every window whose _NET_WM_PID is PID, a window manager's frames searched too."""
    atom = x11.XInternAtom(connection, b"_NET_WM_PID", 0)
    found, pending = [], [x11.XDefaultRootWindow(connection)]
    while pending:
        window = pending.pop()
        if _cardinal(x11, connection, window, atom) == pid:
            found.append(window)
        root, parent, count = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_uint()
        children = ctypes.POINTER(ctypes.c_ulong)()
        if x11.XQueryTree(connection, window, ctypes.byref(root), ctypes.byref(parent), ctypes.byref(children),
                          ctypes.byref(count)):
            pending.extend(children[i] for i in range(count.value))
            if children:
                x11.XFree(children)
    return found


def _cardinal(x11, connection, window: int, atom: int) -> int | None:
    kind, size, items, after = ctypes.c_ulong(), ctypes.c_int(), ctypes.c_ulong(), ctypes.c_ulong()
    data = ctypes.POINTER(ctypes.c_ulong)()
    status = x11.XGetWindowProperty(connection, window, atom, 0, 1, 0, XA_CARDINAL, ctypes.byref(kind),
                                    ctypes.byref(size), ctypes.byref(items), ctypes.byref(after), ctypes.byref(data))
    try:
        return int(data[0]) if status == 0 and items.value == 1 and size.value == 32 else None
    finally:
        if data:
            x11.XFree(data)


def send_map_notify() -> int:
    """Tell this process's windows that they are mapped; how many got the event."""
    with connect() as (x11, connection):
        if connection is None:
            return 0
        windows = windows_of(x11, connection, os.getpid())
        for window in windows:
            event = XEvent()
            event.xmap.type = MAP_NOTIFY
            event.xmap.event = event.xmap.window = window
            x11.XSendEvent(connection, window, 0, STRUCTURE_NOTIFY_MASK, ctypes.byref(event))
        x11.XFlush(connection)
        return len(windows)
