<#
.SYNOPSIS
  Installs the statmsg collector as a Windows service on a ConfigMgr site server.
.DESCRIPTION
  Copies statmsg.exe to -InstallDir, writes the configuration (from statmsg.toml beside this
  script, with -Hierarchy and -Brokers) to -ConfigDir unless one is there, restricts that folder
  to Administrators and SYSTEM (and the service account), checks the configuration, installs the
  service (automatic delayed start, restart on failure) and starts it.
  Run from an elevated PowerShell. Run again to upgrade: the service is stopped, the binary
  replaced, the configuration kept.
.EXAMPLE
  .\install.ps1 -Hierarchy contoso -Brokers "kafka1.contoso.com:9092,kafka2.contoso.com:9092"
.EXAMPLE
  .\install.ps1 -Hierarchy contoso -Brokers kafka1:9093 -Account 'CONTOSO\statmsg$'
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $Hierarchy,
    [Parameter(Mandatory)] [string] $Brokers,
    [string] $InstallDir = "$env:ProgramFiles\statmsg",
    [string] $ConfigDir = "$env:ProgramData\statmsg",
    [string] $ServiceName = "statmsg",
    # A group managed service account ('DOMAIN\name$') needs no password; other accounts are
    # asked for theirs (it goes to the service manager through a file readable only here).
    [string] $Account = ""
)
$ErrorActionPreference = "Stop"
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$exe = Join-Path $InstallDir "statmsg.exe"
$config = Join-Path $ConfigDir "statmsg.toml"

if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) {
    Write-Host "Stopping the running service $ServiceName to upgrade it"
    & $exe service stop --name $ServiceName
}
New-Item -ItemType Directory -Force -Path $InstallDir, $ConfigDir | Out-Null
Copy-Item -Force (Join-Path $here "statmsg.exe") $exe

if (-not (Test-Path $config)) {
    (Get-Content -Raw (Join-Path $here "statmsg.toml")) `
        -replace 'hierarchy = "contoso"', "hierarchy = `"$Hierarchy`"" `
        -replace 'brokers = ".*"', "brokers = `"$Brokers`"" |
        Set-Content -Encoding utf8 $config
}

# The configuration may hold secrets: Administrators, SYSTEM and the service account only.
$acl = New-Object System.Security.AccessControl.DirectorySecurity
$acl.SetAccessRuleProtection($true, $false)
$inherit = "ContainerInherit,ObjectInherit"
foreach ($who in @("BUILTIN\Administrators", "NT AUTHORITY\SYSTEM") + @($Account | Where-Object { $_ })) {
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($who, "FullControl", $inherit, "None", "Allow")))
}
Set-Acl -Path $ConfigDir -AclObject $acl

& $exe config --config $config | Out-Null
if ($LASTEXITCODE -ne 0) { throw "the configuration $config is not valid (statmsg.exe config --config $config says why)" }

$installArgs = @("service", "install", "--config", $config, "--name", $ServiceName)
$passwordFile = $null
if ($Account) {
    $installArgs += @("--account", $Account)
    if (-not $Account.EndsWith('$')) {
        $secure = Read-Host -AsSecureString "Password of $Account"
        $passwordFile = Join-Path $ConfigDir ".service-password"
        # UTF-8 without a byte order mark (Set-Content in PowerShell 5 writes ANSI or a BOM).
        [System.IO.File]::WriteAllText($passwordFile, [System.Net.NetworkCredential]::new("", $secure).Password)
        $installArgs += @("--password-file", $passwordFile)
    }
}
if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) {
    & $exe service uninstall --name $ServiceName
}
try {
    & $exe @installArgs
    if ($LASTEXITCODE -ne 0) { throw "service install failed" }
} finally {
    if ($passwordFile) { Remove-Item -Force $passwordFile }
}
& $exe service start --name $ServiceName
if ($LASTEXITCODE -ne 0) { throw "service start failed: see $ConfigDir\logs" }
Write-Host "statmsg collector running as service $ServiceName; logs in $ConfigDir\logs"
