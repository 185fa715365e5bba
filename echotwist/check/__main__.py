from echotwist.check.cli import main

main()
