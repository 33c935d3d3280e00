from bench.cli.main import main

main()
