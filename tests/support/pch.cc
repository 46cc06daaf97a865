// The object the shared precompiled header (pch.h) is built for; it holds no code.
