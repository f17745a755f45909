import builtins
builtins.__dict__["SOCKLAB_CHEAT"] = True
raise SystemExit("sitecustomize ran: the grader read a submitted file")
