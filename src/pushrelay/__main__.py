from pushrelay.cli import main

main()
