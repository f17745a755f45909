"""`socklab bench`: poll against epoll (and threads, and C) as idle
connections grow.

    capacity   how many connections the machine allows, said plainly
    servers    the servers measured (from the manifest), and getting each ready to run
    baseline   builds the C baseline (c/chat_epoll.c, beside it)
    protocols  what the clients say to chat and c10k servers
    load       the load generator: idle crowd, active client, windows
    sockdiag   asks the kernel how much a server has read (wake-ups)
    procstat   a server's CPU time and memory from /proc
    measure    warm-up, repeats, medians and spreads
    report     terminal table and CSV
    plot       the PNG (matplotlib, the `bench` extra)
"""
